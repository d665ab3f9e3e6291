#include "eval/datasets.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "image/image.h"
#include "io/json.h"
#include "zeroshot/error.h"

namespace zeroshot::eval {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxRows = 10'000'000;
constexpr size_t kMaxClasses = 1'000'000;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string spaced(std::string s) {
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

bool is_uint(const std::string& s, long long* v = nullptr) {
  if (s.empty() || s.size() > 12) return false;
  long long x = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), x);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || x < 0) return false;
  if (v) *v = x;
  return true;
}

bool is_wnid(const std::string& s) {
  if (s.size() != 9 || s[0] != 'n') return false;
  return std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool exists_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// One CSV/TSV line into fields: "double quotes" wrap a field, "" inside is a quote; unquoted fields are trimmed.
std::vector<std::string> split_row(const std::string& line, char delim, const std::string& where) {
  std::vector<std::string> out;
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    while (i < n && (line[i] == ' ' || (line[i] == '\t' && delim != '\t'))) ++i;
    std::string field;
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        field += line[i++];
      }
      if (!closed) throw Error(where, "unterminated \"quoted\" field");
      while (i < n && line[i] != delim) {
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') throw Error(where, "text after a closing quote");
        ++i;
      }
    } else {
      const size_t b = i;
      while (i < n && line[i] != delim) ++i;
      field = trim(line.substr(b, i - b));
    }
    out.push_back(std::move(field));
    if (i >= n) break;
    ++i;  // the delimiter
  }
  return out;
}

// Reads non-blank, non-comment lines with their 1-based numbers.
std::vector<std::pair<size_t, std::string>> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open file");
  std::vector<std::pair<size_t, std::string>> lines;
  std::string line;
  size_t no = 0;
  while (std::getline(in, line)) {
    ++no;
    if (no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (lines.size() >= kMaxRows) throw Error(path, "more than 10 million rows");
    lines.emplace_back(no, line);
  }
  if (in.bad()) throw Error(path, "read error");
  return lines;
}

using ClassMap = std::map<std::string, std::string>;

ClassMap load_map(const std::string& path) {
  ClassMap m;
  if (path.empty()) return m;
  for (auto& [id, name] : read_class_map(path)) m.emplace(id, name);
  return m;
}

std::string mapped_name(const ClassMap& map, const std::string& map_path, const std::string& id,
                        const std::string& fallback) {
  if (map.empty()) return fallback;
  auto it = map.find(id);
  if (it == map.end()) throw Error(map_path, "class id \"" + id + "\" of the data is not in the class map");
  return it->second;
}

// Given class names replace or reorder the data's classes (see the header).
void apply_given_classes(Dataset& d, const std::vector<std::vector<std::string>>& given) {
  if (given.empty()) return;
  std::map<std::string, size_t> by_name;
  for (size_t j = 0; j < given.size(); ++j) by_name.emplace(given[j].at(0), j);
  std::vector<size_t> to(d.classes.size());
  std::set<size_t> used;
  std::string missing;
  for (size_t k = 0; k < d.classes.size(); ++k) {
    auto it = by_name.find(d.classes[k].names.at(0));
    if (it == by_name.end()) it = by_name.find(d.classes[k].id);
    if (it == by_name.end() || !used.insert(it->second).second) {
      if (missing.empty()) missing = d.classes[k].names[0];
      continue;
    }
    to[k] = it->second;
  }
  if (missing.empty()) {
    std::vector<Class> classes(given.size());
    for (size_t j = 0; j < given.size(); ++j) classes[j] = {given[j][0], given[j]};
    for (size_t k = 0; k < d.classes.size(); ++k) classes[to[k]].id = d.classes[k].id;
    for (auto& s : d.samples)
      for (int& l : s.labels) l = static_cast<int>(to[static_cast<size_t>(l)]);
    d.classes = std::move(classes);
    return;
  }
  if (given.size() == d.classes.size()) {
    for (size_t k = 0; k < given.size(); ++k) d.classes[k].names = given[k];
    return;
  }
  throw Error(d.source, "the data has " + std::to_string(d.classes.size()) + " classes and " +
                            std::to_string(given.size()) + " labels are given, and not all names match (\"" + missing +
                            "\" is not among the labels)");
}

void check_duplicate_names(Dataset& d) {
  std::map<std::string, size_t> seen;
  for (size_t k = 0; k < d.classes.size(); ++k) {
    auto [it, fresh] = seen.emplace(d.classes[k].names.at(0), k);
    if (!fresh)
      d.warnings.push_back("classes \"" + d.classes[it->second].id + "\" and \"" + d.classes[k].id +
                           "\" have the same name \"" + it->first +
                           "\": their prompts are identical (rename them with --labels or --class-map)");
  }
}

std::vector<fs::path> sorted_entries(const fs::path& dir, bool dirs) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code e2;
    if (dirs) {
      if (name[0] != '.' && it->is_directory(e2)) out.push_back(it->path());
    } else if (it->is_regular_file(e2) && image::has_image_extension(name)) {
      out.push_back(it->path());
    }
  }
  if (ec) throw Error(dir.string(), "cannot read folder: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> images_under(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2) && image::has_image_extension(it->path().filename().string()))
      out.push_back(it->path().string());
    if (out.size() > kMaxRows) throw Error(dir.string(), "more than 10 million images");
  }
  if (ec) throw Error(dir.string(), "cannot read folder: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Dataset read_folder(const std::string& path, const ReadOptions& opt) {
  Dataset d;
  d.source = path;
  d.layout = Layout::Folder;
  const ClassMap map = load_map(opt.class_map);
  const auto dirs = sorted_entries(path, true);
  if (dirs.empty()) throw Error(path, "no class sub-folders (the folder layout wants one sub-folder per class)");
  if (dirs.size() > kMaxClasses) throw Error(path, "more than 1 million class folders");
  for (const auto& dir : dirs) {
    const std::string id = dir.filename().string();
    const auto files = images_under(dir);
    if (files.empty()) throw Error(dir.string(), "class folder has no image files (every class needs at least one)");
    const int k = static_cast<int>(d.classes.size());
    d.classes.push_back({id, {mapped_name(map, opt.class_map, id, spaced(id))}});
    for (const auto& f : files) {
      if (d.samples.size() >= kMaxRows) throw Error(path, "more than 10 million images");
      d.samples.push_back({f, {k}, 0});
    }
  }
  apply_given_classes(d, opt.classes);
  return d;
}

Dataset read_filename(const std::string& path, const ReadOptions& opt) {
  Dataset d;
  d.source = path;
  d.layout = Layout::Filename;
  const ClassMap map = load_map(opt.class_map);
  const auto files = sorted_entries(path, false);
  if (files.empty()) throw Error(path, "no image files");
  if (files.size() > kMaxRows) throw Error(path, "more than 10 million images");
  struct Parsed {
    std::string prefix, rest;
  };
  std::vector<Parsed> parsed;
  bool all_wnids = true;
  for (const auto& f : files) {
    const std::string stem = f.stem().string();
    const size_t u = stem.find('_');
    if (u == std::string::npos || u == 0 || u + 1 >= stem.size())
      throw Error(f.string(), "file name is not <id>_<class>.<ext> (the file-name layout)");
    parsed.push_back({stem.substr(0, u), stem.substr(u + 1)});
    all_wnids = all_wnids && is_wnid(parsed.back().prefix);
  }
  const bool prefix_is_id = all_wnids || !map.empty();
  std::map<std::string, int> index;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& id = prefix_is_id ? parsed[i].prefix : parsed[i].rest;
    auto it = index.find(id);
    if (it == index.end()) {
      if (d.classes.size() >= kMaxClasses) throw Error(path, "more than 1 million classes");
      it = index.emplace(id, static_cast<int>(d.classes.size())).first;
      d.classes.push_back({id, {mapped_name(map, opt.class_map, id, spaced(parsed[i].rest))}});
    } else if (prefix_is_id && map.empty() &&
               d.classes[static_cast<size_t>(it->second)].names[0] != spaced(parsed[i].rest)) {
      throw Error(files[i].string(), "class id " + id + " is named \"" +
                                         d.classes[static_cast<size_t>(it->second)].names[0] +
                                         "\" in another file name");
    }
    d.samples.push_back({files[i].string(), {it->second}, 0});
  }
  apply_given_classes(d, opt.classes);
  return d;
}

Dataset read_csv(const std::string& path, const ReadOptions& opt) {
  Dataset d;
  d.source = path;
  d.layout = Layout::Csv;
  const ClassMap map = load_map(opt.class_map);
  const auto lines = read_lines(path);
  const std::string ext = lower(fs::path(path).extension().string());
  const char delim =
      (ext == ".tsv" || (!lines.empty() && lines[0].second.find('\t') != std::string::npos)) ? '\t' : ',';
  const fs::path base = fs::path(path).parent_path();

  // Rows first (labels as text), then classes.
  struct Row {
    size_t line;
    std::string file;
    std::vector<std::string> labels;
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& [no, text] = lines[i];
    const std::string where = path + ":" + std::to_string(no);
    auto fields = split_row(text, delim, where);
    if (rows.empty() && i == 0) {
      const std::string h = lower(fields[0]);
      if (h == "path" || h == "file" || h == "filename" || h == "image" || h == "image_path" || h == "filepath")
        continue;
    }
    while (!fields.empty() && fields.back().empty()) fields.pop_back();
    if (fields.empty() || fields[0].empty()) throw Error(where, "empty file name");
    if (fields.size() < 2) throw Error(where, "no label (rows are path" + std::string(1, delim) + "label)");
    Row r{no, fields[0], {}};
    for (size_t f = 1; f < fields.size(); ++f) {
      if (fields[f].empty()) throw Error(where, "empty label in column " + std::to_string(f + 1));
      if (std::find(r.labels.begin(), r.labels.end(), fields[f]) == r.labels.end()) r.labels.push_back(fields[f]);
    }
    const fs::path p = fs::path(r.file).is_absolute() ? fs::path(r.file) : base / r.file;
    if (!exists_file(p)) throw Error(where, p.string() + ": no such file");
    r.file = p.string();
    rows.push_back(std::move(r));
  }
  if (rows.empty()) throw Error(path, "no rows");

  std::map<std::string, int> index;  // label text -> class
  if (!opt.classes.empty()) {
    for (const auto& names : opt.classes) d.classes.push_back({names[0], names});
    std::map<std::string, int> by_name;
    for (size_t j = 0; j < opt.classes.size(); ++j) by_name.emplace(opt.classes[j][0], static_cast<int>(j));
    for (const auto& r : rows) {
      for (const auto& l : r.labels) {
        if (index.count(l)) continue;
        auto it = by_name.find(map.empty() ? l : mapped_name(map, opt.class_map, l, l));
        long long v = 0;
        if (it != by_name.end()) {
          index.emplace(l, it->second);
          d.classes[static_cast<size_t>(it->second)].id = l;
        } else if (is_uint(l, &v) && static_cast<size_t>(v) < opt.classes.size()) {
          index.emplace(l, static_cast<int>(v));
        } else {
          throw Error(path + ":" + std::to_string(r.line), "unknown label \"" + l + "\" (not among the " +
                                                               std::to_string(opt.classes.size()) +
                                                               " given labels, nor an index into them)");
        }
      }
    }
  } else {
    std::set<std::string> uniq;
    for (const auto& r : rows) uniq.insert(r.labels.begin(), r.labels.end());
    std::vector<std::string> ids(uniq.begin(), uniq.end());
    if (ids.size() > kMaxClasses) throw Error(path, "more than 1 million classes");
    if (std::all_of(ids.begin(), ids.end(), [](const std::string& s) { return is_uint(s); }))
      std::stable_sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
        long long x = 0, y = 0;
        is_uint(a, &x);
        is_uint(b, &y);
        return x < y;
      });
    for (const auto& id : ids) {
      index.emplace(id, static_cast<int>(d.classes.size()));
      d.classes.push_back({id, {mapped_name(map, opt.class_map, id, id)}});
    }
  }
  for (auto& r : rows) {
    Sample s{std::move(r.file), {}, 0};
    for (const auto& l : r.labels) {
      const int k = index.at(l);
      if (std::find(s.labels.begin(), s.labels.end(), k) == s.labels.end()) s.labels.push_back(k);
    }
    d.multi_label = d.multi_label || s.labels.size() > 1;
    d.samples.push_back(std::move(s));
  }
  return d;
}

Dataset read_esc50(const std::string& path, const ReadOptions& opt) {
  Dataset d;
  d.source = path;
  d.layout = Layout::Esc50;
  d.modality = "audio";
  const std::string meta = (fs::path(path) / "meta" / "esc50.csv").string();
  const auto lines = read_lines(meta);
  if (lines.empty()) throw Error(meta, "empty file");
  const auto header = split_row(lines[0].second, ',', meta + ":" + std::to_string(lines[0].first));
  auto column = [&](const char* name) {
    for (size_t i = 0; i < header.size(); ++i)
      if (lower(header[i]) == name) return i;
    throw Error(meta, std::string("no \"") + name + "\" column (ESC-50's header is filename,fold,target,category,...)");
  };
  const size_t c_file = column("filename"), c_fold = column("fold"), c_target = column("target"),
               c_cat = column("category");
  const size_t need = std::max({c_file, c_fold, c_target, c_cat}) + 1;
  const ClassMap map = load_map(opt.class_map);
  std::map<long long, std::string> categories;  // target -> category
  std::set<long long> folds;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string where = meta + ":" + std::to_string(lines[i].first);
    const auto f = split_row(lines[i].second, ',', where);
    if (f.size() < need) throw Error(where, "expected at least " + std::to_string(need) + " columns");
    long long fold = 0, target = 0;
    if (!is_uint(f[c_fold], &fold) || fold < 1 || fold > 1000)
      throw Error(where, "fold \"" + f[c_fold] + "\" is not a number >= 1");
    if (!is_uint(f[c_target], &target) || target >= static_cast<long long>(kMaxClasses))
      throw Error(where, "target \"" + f[c_target] + "\" is not a class index");
    if (f[c_cat].empty()) throw Error(where, "empty category");
    auto [it, fresh] = categories.emplace(target, f[c_cat]);
    if (!fresh && it->second != f[c_cat])
      throw Error(where, "target " + f[c_target] + " is \"" + f[c_cat] + "\" here but \"" + it->second + "\" before");
    folds.insert(fold);
    if (opt.fold != 0 && fold != opt.fold) continue;
    const fs::path audio = fs::path(path) / "audio" / f[c_file];
    if (f[c_file].empty() || !exists_file(audio)) throw Error(where, audio.string() + ": no such file");
    d.samples.push_back({audio.string(), {static_cast<int>(target)}, static_cast<int>(fold)});
  }
  if (categories.empty()) throw Error(meta, "no rows");
  const long long num = categories.rbegin()->first + 1;
  for (long long t = 0; t < num; ++t) {
    auto it = categories.find(t);
    if (it == categories.end())
      throw Error(meta, "no row has target " + std::to_string(t) + " (targets must be 0..N-1)");
    const std::string id = std::to_string(t);
    d.classes.push_back({id, {mapped_name(map, opt.class_map, id, spaced(it->second))}});
  }
  if (d.samples.empty()) {
    std::string have;
    for (long long f : folds) have += (have.empty() ? "" : ",") + std::to_string(f);
    throw Error(meta, "no rows in fold " + std::to_string(opt.fold) + " (folds: " + have + ")");
  }
  apply_given_classes(d, opt.classes);
  return d;
}

}  // namespace

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Folder: return "folder";
    case Layout::Csv: return "csv";
    case Layout::Filename: return "filename";
    case Layout::Esc50: return "esc50";
    case Layout::Auto: break;
  }
  return "auto";
}

Layout parse_layout(const std::string& name) {
  const std::string n = lower(name);
  if (n == "auto") return Layout::Auto;
  if (n == "folder" || n == "imagefolder") return Layout::Folder;
  if (n == "csv" || n == "tsv") return Layout::Csv;
  if (n == "filename") return Layout::Filename;
  if (n == "esc50" || n == "esc-50") return Layout::Esc50;
  throw Error("--layout " + name, "unknown layout (auto, folder, csv, filename, esc50)");
}

Layout detect_layout(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw Error(path, "no such file or directory");
  if (fs::is_regular_file(st)) {
    const std::string ext = lower(fs::path(path).extension().string());
    if (ext == ".csv" || ext == ".tsv" || ext == ".txt") return Layout::Csv;
    throw Error(path, "not a .csv, .tsv or .txt file of path,label rows, nor a folder");
  }
  if (!fs::is_directory(st)) throw Error(path, "not a file or folder");
  if (exists_file(fs::path(path) / "meta" / "esc50.csv")) return Layout::Esc50;
  if (!sorted_entries(path, true).empty()) return Layout::Folder;
  if (!sorted_entries(path, false).empty()) return Layout::Filename;
  throw Error(path, "neither class sub-folders nor image files named <id>_<class>.<ext>");
}

std::vector<std::pair<std::string, std::string>> read_class_map(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  if (lower(fs::path(path).extension().string()) == ".json") {
    const io::Json j = io::load_json(path);
    if (!j.is_object()) throw Error(path, "class map JSON must be an object {\"id\": \"name\"}");
    for (auto it = j.begin(); it != j.end(); ++it) {
      const auto& v = it.value();
      if (v.is_string()) {
        out.emplace_back(it.key(), v.get<std::string>());
      } else if (v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_string()) {
        out.emplace_back(v[0].get<std::string>(), v[1].get<std::string>());  // ImageNet's {"0": [wnid, name]}
      } else {
        throw Error(path, "class map entry \"" + it.key() + "\" is not a name nor an [id, name] pair");
      }
    }
  } else {
    for (const auto& [no, text] : read_lines(path)) {
      const std::string t = trim(text);
      size_t cut = t.find('\t');
      if (cut == std::string::npos) cut = t.find(',');
      if (cut == std::string::npos) cut = t.find(' ');
      const std::string where = path + ":" + std::to_string(no);
      if (cut == std::string::npos) throw Error(where, "expected <id> <name> (separated by a tab, comma or space)");
      std::string id = trim(t.substr(0, cut)), name = trim(t.substr(cut + 1));
      if (id.empty() || name.empty()) throw Error(where, "empty id or name");
      out.emplace_back(std::move(id), std::move(name));
    }
  }
  if (out.empty()) throw Error(path, "empty class map");
  std::set<std::string> ids;
  for (const auto& [id, name] : out)
    if (!ids.insert(id).second) throw Error(path, "class id \"" + id + "\" appears twice");
  return out;
}

Dataset read_dataset(const std::string& path, const ReadOptions& opt) {
  const Layout layout = opt.layout == Layout::Auto ? detect_layout(path) : opt.layout;
  if (opt.fold != 0 && layout != Layout::Esc50) throw Error(path, "folds are only defined for the ESC-50 layout");
  for (const auto& c : opt.classes)
    if (c.empty() || c[0].empty()) throw Error("labels", "empty label");
  Dataset d;
  switch (layout) {
    case Layout::Folder: d = read_folder(path, opt); break;
    case Layout::Csv: d = read_csv(path, opt); break;
    case Layout::Filename: d = read_filename(path, opt); break;
    case Layout::Esc50: d = read_esc50(path, opt); break;
    case Layout::Auto: break;
  }
  check_duplicate_names(d);
  return d;
}

}  // namespace zeroshot::eval
