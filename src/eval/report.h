// The `zeroshot eval --report` page: one self-contained HTML file (inline CSS, SVG, a few lines of JS for sorting,
// thumbnails as data: URIs; nothing fetched), readable offline and attachable to an issue.
//
// Sections: the run (data, model, counts, time); headline metrics of the primary template set; the template sets
// side by side (when several); per-fold accuracy (ESC-50); unreadable inputs; the worst-confused pairs, each with a
// thumbnail of one image of the true class taken for the other; a confusion-matrix heatmap (rows: true class,
// normalized per row; up to `max_heatmap_classes` classes); the per-class table (support, predicted, correct,
// precision, recall; multi-label: positives and average precision), sortable by any column.
#pragma once

#include <string>

#include "eval/datasets.h"
#include "eval/evaluate.h"

namespace zeroshot::eval {

struct ReportOptions {
  size_t max_heatmap_classes = 100;
  size_t worst_pairs = 24;
  int thumbnail_side = 128;
  uint64_t max_pixels = 100'000'000;  // images over this are not decoded for thumbnails
};

// The page as a string (thumbnails decoded from the samples' files).
std::string render_report(const Dataset& data, const Evaluation& ev, const RunInfo& info,
                          const ReportOptions& opt = {});

// Writes render_report() to `path` (through a temporary file renamed into place). Throws zeroshot::Error naming it.
void write_report(const std::string& path, const Dataset& data, const Evaluation& ev, const RunInfo& info,
                  const ReportOptions& opt = {});

// HTML text escaping (& < > " ').
std::string html_escape(const std::string& s);

}  // namespace zeroshot::eval
