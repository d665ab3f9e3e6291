#include "eval/report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "eval/thumbnail.h"
#include "zeroshot/error.h"

namespace zeroshot::eval {

namespace fs = std::filesystem;

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

constexpr size_t kMaxTableRows = 10000;  // keeps the page a few MB for any number of classes

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pct(double v) { return std::isfinite(v) ? fmt("%.2f%%", 100 * v) : "&ndash;"; }
std::string sort_key(double v) { return std::isfinite(v) ? fmt("%.6f", v) : "-1"; }

// A number cell with a proportional bar behind it.
std::string bar_cell(double v) {
  if (!std::isfinite(v)) return "<td class=\"num\" data-v=\"-1\">&ndash;</td>";
  return "<td class=\"num\" data-v=\"" + sort_key(v) +
         "\"><span class=\"bar\"><i style=\"width:" + fmt("%.1f", 100 * std::clamp(v, 0.0, 1.0)) + "%\"></i></span>" +
         pct(v) + "</td>";
}

std::string count_cell(size_t v) {
  return "<td class=\"num\" data-v=\"" + std::to_string(v) + "\">" + std::to_string(v) + "</td>";
}

std::string shorten(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  size_t cut = n - 1;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
  return s.substr(0, cut) + "\xE2\x80\xA6";
}

const char* kStyle = R"CSS(
:root { --ink:#1d2330; --muted:#667085; --line:#e4e7ec; --soft:#f6f7f9; --accent:#2d6cdf; --good:#1f9d55; --bad:#d64545; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
main { max-width: 1140px; margin: 0 auto; padding: 28px 28px 60px; }
header h1 { font-size: 24px; margin: 0 0 4px; }
header .sub { color: var(--muted); word-break: break-all; }
h2 { font-size: 17px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
.note { color: var(--muted); margin: 6px 0 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 20px; }
.card { flex: 1 1 150px; background: var(--soft); border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .v small { font-size: 13px; color: var(--muted); font-weight: 400; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
th { background: var(--soft); font-weight: 600; font-size: 12.5px; white-space: nowrap; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:hover { color: var(--accent); }
th[data-dir="asc"]::after { content: " \25B2"; font-size: 9px; }
th[data-dir="desc"]::after { content: " \25BC"; font-size: 9px; }
td.num, th.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfbfc; }
tr.best td { font-weight: 600; }
table.kv { width: auto; }
table.kv th { position: static; background: none; color: var(--muted); font-weight: 500; }
table.kv tbody tr:nth-child(even) td { background: none; }
.bar { display: inline-block; width: 60px; height: 7px; background: #eceff3; border-radius: 4px; margin-right: 8px; vertical-align: middle; overflow: hidden; }
.bar i { display: block; height: 100%; background: var(--accent); }
.scroll { max-height: 720px; overflow: auto; border: 1px solid var(--line); border-radius: 8px; }
.pairs { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 14px; }
.pair { border: 1px solid var(--line); border-radius: 10px; overflow: hidden; background: #fff; }
.pair .img { height: 128px; background: var(--soft); display: flex; align-items: center; justify-content: center; }
.pair .img img { max-width: 100%; max-height: 128px; }
.pair .img span { color: var(--muted); font-size: 12px; }
.pair .txt { padding: 8px 10px; font-size: 13px; }
.pair .t { color: var(--good); font-weight: 600; }
.pair .p { color: var(--bad); font-weight: 600; }
.pair .n { float: right; background: var(--soft); border-radius: 9px; padding: 0 7px; font-size: 12px; }
.pair .f { color: var(--muted); font-size: 11px; word-break: break-all; margin-top: 3px; }
.heat { overflow: auto; border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
.heat text { font-size: 10px; fill: #344054; }
.legend { display: flex; gap: 18px; align-items: center; color: var(--muted); font-size: 12px; margin: 8px 0; }
.legend b { display: inline-block; width: 70px; height: 9px; border-radius: 3px; vertical-align: middle; margin: 0 6px; }
.err { color: var(--bad); }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; }
code { background: var(--soft); padding: 1px 4px; border-radius: 4px; }
)CSS";

const char* kScript = R"JS(
document.querySelectorAll('table.sortable').forEach(function (t) {
  t.querySelectorAll('th').forEach(function (th, i) {
    th.addEventListener('click', function () {
      var dir = th.dataset.dir === 'desc' ? 'asc' : 'desc';
      t.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(r) { var c = r.cells[i]; return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent.toLowerCase(); }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var r = typeof x === 'number' ? x - y : (x < y ? -1 : x > y ? 1 : 0);
        return dir === 'asc' ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
)JS";

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::tm tm{};
  localtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

std::string card(const std::string& key, const std::string& value) {
  return "<div class=\"card\"><div class=\"k\">" + key + "</div><div class=\"v\">" + value + "</div></div>";
}

// Heatmap cell colour: diagonal (correct) green, off-diagonal red, stronger with the row fraction.
std::string cell_colour(bool diagonal, double f) {
  const double l = 96 - 58 * std::clamp(f, 0.0, 1.0);
  return diagonal ? fmt("hsl(145,55%%,%.0f%%)", l) : fmt("hsl(4,78%%,%.0f%%)", l);
}

std::string heatmap(const Dataset& data, const SingleLabelMetrics& m) {
  const size_t K = data.classes.size();
  const int cell = K <= 12 ? 30 : K <= 30 ? 20 : K <= 60 ? 14 : 10;
  const int side = static_cast<int>(K) * cell;
  const int font = std::min(12, cell - 2);
  // Room for the longest (shortened) label: ~0.6 em per character; the top labels are rotated by 60 degrees.
  size_t longest = 1;
  for (const auto& c : data.classes) longest = std::max(longest, std::min<size_t>(c.names[0].size(), 26));
  const int text = static_cast<int>(static_cast<double>(longest) * font * 0.6);
  const int label_w = 16 + text, label_h = 16 + static_cast<int>(text * 0.87);
  std::string s =
      "<div class=\"legend\"><span>correct<b style=\"background:linear-gradient(90deg," + cell_colour(true, 0.05) +
      "," + cell_colour(true, 1) + ")\"></b></span><span>confused<b style=\"background:linear-gradient(90deg," +
      cell_colour(false, 0.05) + "," + cell_colour(false, 1) +
      ")\"></b></span><span>colour: share of the true class's samples (rows: true class, columns: "
      "predicted)</span></div><div class=\"heat\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
      std::to_string(label_w + side + 2 + text / 2) + "\" height=\"" + std::to_string(label_h + side + 2) + "\">";
  s += "<rect x=\"" + std::to_string(label_w) + "\" y=\"" + std::to_string(label_h) + "\" width=\"" +
       std::to_string(side) + "\" height=\"" + std::to_string(side) + "\" fill=\"#f7f8fa\" stroke=\"#d0d5dd\"/>";
  for (size_t k = 0; k < K; ++k) {
    const std::string name = html_escape(shorten(data.classes[k].names[0], 26));
    const int c = static_cast<int>(k) * cell + cell / 2;
    s += "<text x=\"" + std::to_string(label_w - 6) + "\" y=\"" + std::to_string(label_h + c) +
         "\" text-anchor=\"end\" dominant-baseline=\"middle\" style=\"font-size:" + std::to_string(font) + "px\">" +
         name + "</text>";
    s += "<text transform=\"translate(" + std::to_string(label_w + c) + "," + std::to_string(label_h - 6) +
         ") rotate(-60)\" dominant-baseline=\"middle\" style=\"font-size:" + std::to_string(font) + "px\">" + name +
         "</text>";
    if (K <= 60 && k > 0) {  // faint grid lines when cells are large enough to read
      const std::string p = std::to_string(label_w + static_cast<int>(k) * cell),
                        q = std::to_string(label_h + static_cast<int>(k) * cell);
      s += "<line x1=\"" + p + "\" y1=\"" + std::to_string(label_h) + "\" x2=\"" + p + "\" y2=\"" +
           std::to_string(label_h + side) + "\" stroke=\"#eaecf0\"/><line x1=\"" + std::to_string(label_w) +
           "\" y1=\"" + q + "\" x2=\"" + std::to_string(label_w + side) + "\" y2=\"" + q + "\" stroke=\"#eaecf0\"/>";
    }
  }
  for (const auto& c : m.confusion) {
    const size_t support = m.per_class[static_cast<size_t>(c.truth)].support;
    const double f = support ? static_cast<double>(c.count) / static_cast<double>(support) : 0;
    const bool diag = c.truth == c.predicted;
    s += "<rect x=\"" + std::to_string(label_w + c.predicted * cell) + "\" y=\"" +
         std::to_string(label_h + c.truth * cell) + "\" width=\"" + std::to_string(cell) + "\" height=\"" +
         std::to_string(cell) + "\" fill=\"" + cell_colour(diag, f) + "\"><title>" +
         html_escape(data.classes[static_cast<size_t>(c.truth)].names[0]) + " \xE2\x86\x92 " +
         html_escape(data.classes[static_cast<size_t>(c.predicted)].names[0]) + ": " + std::to_string(c.count) +
         " of " + std::to_string(support) + "</title></rect>";
    if (cell >= 20)
      s += "<text x=\"" + std::to_string(label_w + c.predicted * cell + cell / 2) + "\" y=\"" +
           std::to_string(label_h + c.truth * cell + cell / 2) +
           "\" text-anchor=\"middle\" dominant-baseline=\"middle\" style=\"font-size:" +
           std::to_string(cell >= 30 ? 11 : 9) + "px;fill:" + (f > 0.55 ? "#fff" : "#1d2330") + "\">" +
           std::to_string(c.count) + "</text>";
  }
  return s + "</svg></div>";
}

std::string worst_pairs(const Dataset& data, const Evaluation& ev, const SingleLabelMetrics& m,
                        const ReportOptions& opt) {
  const auto worst = worst_confused(m.confusion, opt.worst_pairs);
  if (worst.empty()) return "<p class=\"note\">No confusions: every evaluated sample was classified correctly.</p>";
  std::string s =
      "<p class=\"note\">Pairs (true class \xE2\x86\x92 predicted class) by number of samples, each with one "
      "example.</p><div class=\"pairs\">";
  for (const auto& c : worst) {
    size_t example = ev.evaluated.size();
    for (size_t r = 0; r < ev.evaluated.size(); ++r)
      if (data.samples[ev.evaluated[r]].labels[0] == c.truth && m.top1[r] == c.predicted) {
        example = r;
        break;
      }
    const std::string path = example < ev.evaluated.size() ? data.samples[ev.evaluated[example]].path : "";
    std::string img = "<span>no preview</span>";
    if (data.modality == "image" && !path.empty()) {
      const std::string uri = thumbnail_data_uri(path, opt.thumbnail_side, opt.max_pixels);
      if (!uri.empty()) img = "<img alt=\"\" src=\"" + uri + "\">";
    } else if (data.modality != "image") {
      img = "<span>" + html_escape(data.modality) + "</span>";
    }
    s += "<div class=\"pair\"><div class=\"img\">" + img + "</div><div class=\"txt\"><span class=\"n\">" +
         std::to_string(c.count) + "&times;</span><span class=\"t\">" +
         html_escape(data.classes[static_cast<size_t>(c.truth)].names[0]) +
         "</span><br>\xE2\x86\x92 <span class=\"p\">" +
         html_escape(data.classes[static_cast<size_t>(c.predicted)].names[0]) + "</span><div class=\"f\">" +
         html_escape(fs::path(path).filename().string()) + "</div></div></div>";
  }
  return s + "</div>";
}

// The classes that take the most top-1 predictions: where a model's errors pile up (a "hub" class).
std::string most_predicted(const Dataset& data, const SingleLabelMetrics& m, size_t limit) {
  std::vector<size_t> order(data.classes.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return m.per_class[a].predicted > m.per_class[b].predicted; });
  std::string s =
      "<table><thead><tr><th>class</th><th class=\"num\">predicted</th><th class=\"num\">of which "
      "correct</th><th class=\"num\">share of all predictions</th><th class=\"num\">precision</th></tr>"
      "</thead><tbody>";
  for (size_t i = 0; i < std::min(limit, order.size()); ++i) {
    const ClassStats& c = m.per_class[order[i]];
    if (c.predicted == 0) break;
    s += "<tr><td>" + html_escape(data.classes[order[i]].names[0]) + "</td>" + count_cell(c.predicted) +
         count_cell(c.correct) +
         bar_cell(static_cast<double>(c.predicted) / static_cast<double>(std::max<size_t>(m.samples, 1))) +
         bar_cell(c.precision) + "</tr>";
  }
  return s + "</tbody></table>";
}

std::string set_table(const Evaluation& ev) {
  std::string s = "<table><thead><tr><th>template set</th><th class=\"num\">templates</th>";
  s += ev.multi_label
           ? "<th class=\"num\">mean average precision</th>"
           : "<th class=\"num\">top-1</th><th class=\"num\">top-5</th><th class=\"num\">mean per-class recall</th>";
  s += "</tr></thead><tbody>";
  double best = -1;
  for (const auto& r : ev.sets) best = std::max(best, ev.multi_label ? r.multi.mean_average_precision : r.single.acc1);
  for (size_t i = 0; i < ev.sets.size(); ++i) {
    const auto& r = ev.sets[i];
    const double key = ev.multi_label ? r.multi.mean_average_precision : r.single.acc1;
    s += std::string("<tr") + (key == best && ev.sets.size() > 1 ? " class=\"best\"" : "") + "><td>" +
         html_escape(r.set.name) + (i == 0 ? " <span class=\"note\">(primary)</span>" : "") +
         "</td><td class=\"num\">" + std::to_string(r.set.templates.size()) + "</td>";
    if (ev.multi_label) {
      s += bar_cell(r.multi.mean_average_precision);
    } else {
      s += bar_cell(r.single.acc1) + bar_cell(r.single.acc5) + bar_cell(r.single.mean_per_class_recall);
    }
    s += "</tr>";
  }
  return s + "</tbody></table>";
}

std::string class_table(const Dataset& data, const Evaluation& ev) {
  const SetResult& p = ev.sets[0];
  const bool show_id =
      std::any_of(data.classes.begin(), data.classes.end(), [](const Class& c) { return c.id != c.names[0]; });
  std::string s = "<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th class=\"num\">#</th><th>class</th>";
  if (show_id) s += "<th>id</th>";
  s += ev.multi_label ? "<th class=\"num\">positives</th><th class=\"num\">average precision</th>"
                      : "<th class=\"num\">support</th><th class=\"num\">predicted</th><th class=\"num\">correct</th>"
                        "<th class=\"num\">precision</th><th class=\"num\">recall</th>";
  s += "</tr></thead><tbody>";
  const size_t rows = std::min(data.classes.size(), kMaxTableRows);
  for (size_t k = 0; k < rows; ++k) {
    s += "<tr>" + count_cell(k) + "<td>" + html_escape(data.classes[k].names[0]) + "</td>";
    if (show_id) s += "<td>" + html_escape(data.classes[k].id) + "</td>";
    if (ev.multi_label) {
      s += count_cell(p.multi.positives[k]) + bar_cell(p.multi.average_precision[k]);
    } else {
      const ClassStats& c = p.single.per_class[k];
      s += count_cell(c.support) + count_cell(c.predicted) + count_cell(c.correct) + bar_cell(c.precision) +
           bar_cell(c.recall);
    }
    s += "</tr>";
  }
  s += "</tbody></table></div>";
  if (rows < data.classes.size())
    s += "<p class=\"note\">The first " + std::to_string(rows) + " of " + std::to_string(data.classes.size()) +
         " classes; the JSON output (-o) has them all.</p>";
  return s;
}

}  // namespace

// The k-shot curve as an inline SVG: few-shot score against log2(shots), the zero-shot score as a dashed line (the
// CLIP paper's figure 6 layout), and the numbers as a table beside it.
std::string shot_curve(const RunInfo& info) {
  const auto& c = info.shot_curve;
  const double W = 520, H = 300, L = 56, R = 16, T = 16, B = 40;
  double lo = info.shot_zero_shot, hi = info.shot_zero_shot;
  for (const auto& p : c) {
    lo = std::min(lo, p.score);
    hi = std::max(hi, p.score);
  }
  lo = std::max(0.0, std::floor(lo * 10 - 0.5) / 10);
  hi = std::min(1.0, std::ceil(hi * 10 + 0.5) / 10);
  if (!(hi > lo)) hi = lo + 0.1;
  const double kmax = std::log2(static_cast<double>(c.back().shots)), kspan = kmax > 0 ? kmax : 1;
  auto x = [&](size_t k) { return L + (W - L - R) * std::log2(static_cast<double>(k)) / kspan; };
  auto y = [&](double v) { return T + (H - T - B) * (hi - v) / (hi - lo); };
  std::string s = "<svg width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", H) +
                  "\" role=\"img\" aria-label=\"k-shot curve\" style=\"font-size:11px\">";
  for (int g = 0; g <= 4; ++g) {
    const double v = lo + (hi - lo) * g / 4;
    s += "<line x1=\"" + fmt("%.1f", L) + "\" x2=\"" + fmt("%.1f", W - R) + "\" y1=\"" + fmt("%.1f", y(v)) +
         "\" y2=\"" + fmt("%.1f", y(v)) + "\" stroke=\"#e5e7eb\"/><text x=\"" + fmt("%.1f", L - 6) + "\" y=\"" +
         fmt("%.1f", y(v) + 4) + "\" text-anchor=\"end\">" + pct(v) + "</text>";
  }
  std::string pts;
  for (const auto& p : c) {
    pts += fmt("%.1f,", x(p.shots)) + fmt("%.1f ", y(p.score));
    s += "<text x=\"" + fmt("%.1f", x(p.shots)) + "\" y=\"" + fmt("%.1f", H - B + 16) + "\" text-anchor=\"middle\">" +
         std::to_string(p.shots) + "</text>";
  }
  s += "<line x1=\"" + fmt("%.1f", L) + "\" x2=\"" + fmt("%.1f", W - R) + "\" y1=\"" +
       fmt("%.1f", y(info.shot_zero_shot)) + "\" y2=\"" + fmt("%.1f", y(info.shot_zero_shot)) +
       "\" stroke=\"#9ca3af\" stroke-dasharray=\"5 4\"/><text x=\"" + fmt("%.1f", W - R) + "\" y=\"" +
       fmt("%.1f", y(info.shot_zero_shot) - 5) + "\" text-anchor=\"end\" fill=\"#6b7280\">zero-shot</text>";
  s += "<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\"/>";
  for (const auto& p : c)
    s += "<circle cx=\"" + fmt("%.1f", x(p.shots)) + "\" cy=\"" + fmt("%.1f", y(p.score)) +
         "\" r=\"3.5\" fill=\"#2563eb\"><title>" + std::to_string(p.shots) + " shots: " + pct(p.score) +
         "</title></circle>";
  s += "<text x=\"" + fmt("%.1f", (L + W - R) / 2) + "\" y=\"" + fmt("%.1f", H - 6) +
       "\" text-anchor=\"middle\">labeled samples per class</text></svg>";
  std::string t = "<table><thead><tr><th class=\"num\">shots</th><th class=\"num\">train</th><th class=\"num\">" +
                  html_escape(info.shot_metric) + "</th><th class=\"num\">vs zero-shot</th></tr></thead><tbody>";
  for (const auto& p : c)
    t += "<tr><td class=\"num\">" + std::to_string(p.shots) + "</td><td class=\"num\">" + std::to_string(p.train) +
         "</td><td class=\"num\">" + pct(p.score) + "</td><td class=\"num\">" +
         fmt("%+.2f", 100 * (p.score - info.shot_zero_shot)) + "</td></tr>";
  t += "</tbody></table>";
  return "<h2>Few-shot: k-shot curve</h2><p class=\"note\">A " + html_escape(info.shot_method) +
         " head fitted on k samples per class for each k, scored with the zero-shot classifier on the same " +
         std::to_string(info.shot_test) + " held-out samples (zero-shot: " + pct(info.shot_zero_shot) + ").</p>" + s +
         t;
}

std::string render_report(const Dataset& data, const Evaluation& ev, const RunInfo& info, const ReportOptions& opt) {
  if (ev.sets.empty()) throw Error("report", "nothing was evaluated");
  const SetResult& p = ev.sets[0];
  const std::string title =
      fs::path(data.source).filename().string().empty() ? data.source : fs::path(data.source).filename().string();
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>zeroshot eval: " +
      html_escape(title) + "</title><style>" + kStyle + "</style></head><body><main>";
  h += "<header><h1>Zero-shot evaluation: " + html_escape(title) + "</h1><div class=\"sub\">" +
       html_escape(data.source) + " &middot; model " + html_escape(info.model) + "</div></header>";

  // Headline numbers.
  h += "<div class=\"cards\">";
  if (ev.multi_label) {
    h += card("mean average precision", pct(p.multi.mean_average_precision));
  } else {
    h += card("top-1 accuracy", pct(p.single.acc1)) + card("top-5 accuracy", pct(p.single.acc5)) +
         card("mean per-class recall", pct(p.single.mean_per_class_recall));
  }
  h += card("evaluated",
            std::to_string(ev.evaluated.size()) + " <small>of " + std::to_string(data.samples.size()) + "</small>");
  h += card("classes", std::to_string(data.classes.size()));
  h += "</div>";

  // The run.
  h += "<h2>Run</h2><table class=\"kv\"><tbody>";
  auto kv = [&](const std::string& k, const std::string& v) { h += "<tr><th>" + k + "</th><td>" + v + "</td></tr>"; };
  kv("data", "<code>" + html_escape(data.source) + "</code> (" + layout_name(data.layout) + " layout, " +
                 (ev.multi_label ? "multi-label" : "single-label") + ")");
  kv("model", "<code>" + html_escape(info.model) + "</code>");
  kv("primary templates", html_escape(p.set.name) + " (" + std::to_string(p.set.templates.size()) + ")");
  std::string inputs = std::to_string(info.embedded) + " embedded";
  if (!info.cache.empty())
    inputs += ", " + std::to_string(info.from_cache) + " from the cache <code>" + html_escape(info.cache) + "</code>";
  kv("inputs", inputs);
  kv("time", fmt("%.1f s", info.seconds_total) + " (text " + fmt("%.1f s", info.seconds_text) + ", inputs " +
                 fmt("%.1f s", info.seconds_inputs) + ")");
  if (!info.head.empty()) kv("head", "<code>" + html_escape(info.head) + "</code> (scores from a few-shot head)");
  kv("generated", now_text() + " by zeroshot eval");
  h += "</tbody></table>";
  for (const auto& w : data.warnings) h += "<p class=\"note\">&#9888; " + html_escape(w) + "</p>";

  if (!info.shot_curve.empty()) h += shot_curve(info);

  if (ev.sets.size() > 1) {
    h += "<h2>Template sets</h2><p class=\"note\">Same input embeddings, class embeddings from each set of prompt "
         "templates; <i>ensemble</i> averages all of them. The details below are for the primary set.</p>" +
         set_table(ev);
  }

  if (!ev.multi_label && !p.folds.empty()) {
    h += "<h2>Per fold</h2><table><thead><tr><th>fold</th><th class=\"num\">samples</th><th class=\"num\">top-1</th>"
         "<th class=\"num\">top-5</th><th class=\"num\">mean per-class recall</th></tr></thead><tbody>";
    for (const auto& [fold, m] : p.folds)
      h += "<tr><td>" + std::to_string(fold) + "</td>" + count_cell(m.samples) + bar_cell(m.acc1) + bar_cell(m.acc5) +
           bar_cell(m.mean_per_class_recall) + "</tr>";
    h += "</tbody></table>";
  }

  if (!ev.failed.empty()) {
    h += "<h2>Unreadable inputs (" + std::to_string(ev.failed.size()) +
         ")</h2><p class=\"note\">Left out of every "
         "metric.</p><ul>";
    for (const auto& [i, e] : ev.failed) h += "<li class=\"err\">" + html_escape(e) + "</li>";
    h += "</ul>";
  }

  if (!ev.multi_label) {
    h += "<h2>Worst-confused pairs</h2>" + worst_pairs(data, ev, p.single, opt);
    h += "<h2>Most-predicted classes</h2><p class=\"note\">The classes that take the most top-1 predictions; a class "
         "far above its share attracts errors.</p>" +
         most_predicted(data, p.single, 10);
    h += "<h2>Confusion matrix</h2>";
    if (data.classes.size() <= opt.max_heatmap_classes) {
      h += heatmap(data, p.single);
    } else {
      h += "<p class=\"note\">The heatmap is drawn for up to " + std::to_string(opt.max_heatmap_classes) +
           " classes; this data set has " + std::to_string(data.classes.size()) +
           ". The worst-confused pairs above and the table below hold the same counts; the JSON output has every "
           "non-zero cell.</p>";
    }
  }

  h += std::string("<h2>Per class</h2><p class=\"note\">") +
       (ev.multi_label ? "Average precision: the samples ranked by cosine with the label, precision averaged over "
                         "its positives (CLIP_benchmark's). "
                       : "") +
       "Click a column to sort.</p>" + class_table(data, ev);
  h += "<footer>zeroshot eval &middot; metrics as in CLIP_benchmark (acc1, acc5, mean_per_class_recall, "
       "mean_average_precision)</footer></main><script>" +
       std::string(kScript) + "</script></body></html>\n";
  return h;
}

void write_report(const std::string& path, const Dataset& data, const Evaluation& ev, const RunInfo& info,
                  const ReportOptions& opt) {
  const std::string html = render_report(data, ev, info, opt);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path, "cannot write the report");
    out.write(html.data(), static_cast<std::streamsize>(html.size()));
    if (!out) throw Error(path, "write error");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(path, "cannot write the report");
  }
}

}  // namespace zeroshot::eval
