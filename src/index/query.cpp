#include "index/query.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "classify/zero_shot.h"
#include "zeroshot/error.h"

namespace zeroshot::index {

namespace fs = std::filesystem;

namespace {

bool is_operator(const std::string& w) { return w == "+" || w == "-"; }

bool has_path_prefix(const std::string& s) {
  return s.rfind('/', 0) == 0 || s.rfind("./", 0) == 0 || s.rfind("../", 0) == 0 || s.rfind("~/", 0) == 0 ||
         s.rfind("file://", 0) == 0;
}

std::string expand_path(const std::string& s) {
  if (s.rfind("file://", 0) == 0) return s.substr(7);
  if (s.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    if (home && *home) return std::string(home) + s.substr(1);
  }
  return s;
}

bool names_file(const std::string& s) {
  std::error_code ec;
  return fs::is_regular_file(s, ec);
}

// A word (weight stripped) that stands for an image.
bool is_image_word(const std::string& w) {
  float wt;
  std::string rest;
  const std::string v = split_weight(w, &wt, &rest) ? rest : w;
  return has_path_prefix(v) || names_file(v);
}

QueryTerm make_term(const std::string& text, float sign, bool force_image) {
  QueryTerm t;
  std::string v;
  float w = 1;
  if (!split_weight(text, &w, &v)) v = text;
  if (v.find_first_not_of(" \t\r\n") == std::string::npos) throw Error("query", "empty term in \"" + text + "\"");
  t.weight = sign * w;
  t.image = force_image || has_path_prefix(v) || names_file(v);
  t.value = t.image ? expand_path(v) : v;
  return t;
}

}  // namespace

bool split_weight(const std::string& s, float* weight, std::string* rest) {
  // rclip's ^(\d+(\.\d+)?|\.\d+|\d+\.):(.+)$
  size_t i = 0, digits = 0, frac_digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac_digits;
  }
  if (digits + frac_digits == 0 || i >= s.size() || s[i] != ':' || i + 1 >= s.size()) return false;
  const double w = std::strtod(s.substr(0, i).c_str(), nullptr);
  if (!std::isfinite(w) || w > 1e6) return false;
  *weight = static_cast<float>(w);
  *rest = s.substr(i + 1);
  return true;
}

std::vector<QueryTerm> parse_query(const std::vector<std::string>& words, const std::vector<std::string>& images) {
  std::vector<QueryTerm> terms;
  float sign = 1;
  bool have_op = false;  // an operator is waiting for its term
  std::string run;       // text words of the current term
  auto close_run = [&] {
    if (run.empty()) return;
    terms.push_back(make_term(run, sign, false));
    run.clear();
    sign = 1;
    have_op = false;
  };
  for (const auto& w : words) {
    if (is_operator(w)) {
      if (have_op && run.empty()) throw Error("query", "two operators in a row (\"" + w + "\")");
      close_run();
      sign = w == "-" ? -1.f : 1.f;
      have_op = true;
    } else if (is_image_word(w)) {
      close_run();
      terms.push_back(make_term(w, sign, true));
      sign = 1;
      have_op = false;
    } else {
      run += run.empty() ? w : " " + w;
    }
  }
  if (have_op && run.empty()) throw Error("query", "ends with an operator: give a term after it");
  close_run();
  for (const auto& im : images) terms.push_back(make_term(im, 1, true));
  if (terms.empty()) throw Error("query", "empty: give words to search for, or --image FILE");
  return terms;
}

std::vector<float> combine_terms(const std::vector<QueryTerm>& terms, const std::vector<const float*>& embeddings,
                                 size_t dim) {
  if (embeddings.size() != terms.size()) throw Error("query", "internal: one embedding per term expected");
  std::vector<double> acc(dim, 0.0);
  std::vector<float> v(dim);
  for (size_t i = 0; i < terms.size(); ++i) {
    std::copy(embeddings[i], embeddings[i] + dim, v.begin());
    classify::l2_normalize_rows(v.data(), 1, dim);
    for (size_t k = 0; k < dim; ++k) acc[k] += static_cast<double>(terms[i].weight) * v[k];
  }
  double n = 0;
  for (double x : acc) n += x * x;
  n = std::sqrt(n);
  if (!(n > 1e-6)) throw Error("query", "the terms cancel out (the weighted sum of their embeddings is zero)");
  std::vector<float> q(dim);
  for (size_t k = 0; k < dim; ++k) q[k] = static_cast<float>(acc[k] / n);
  return q;
}

std::vector<float> query_vector(const Model& model, const std::vector<QueryTerm>& terms) {
  const size_t dim = model.embedding_dim();
  std::vector<std::string> texts, images;
  for (const auto& t : terms) (t.image ? images : texts).push_back(t.value);
  const Embeddings te = model.embed_texts(texts);
  std::vector<float> ie(images.size() * dim);
  model.embed_image_files(images, 8, [&](size_t i, const float* e, const std::string& err) {
    if (!e) throw Error(err);
    std::copy(e, e + dim, ie.begin() + static_cast<std::ptrdiff_t>(i * dim));
    return true;
  });
  std::vector<const float*> rows;
  rows.reserve(terms.size());
  size_t ti = 0, ii = 0;
  for (const auto& t : terms) rows.push_back(t.image ? ie.data() + (ii++) * dim : te.row(ti++));
  return combine_terms(terms, rows, dim);
}

}  // namespace zeroshot::index
