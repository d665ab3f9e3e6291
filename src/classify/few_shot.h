// Few-shot heads over image embeddings (`zeroshot fit`): plain functions over float matrices, no model.
//
// A head maps an embedding x (any norm; it is L2-normalized first, x^) to K logits
//   logits = W x^ + b  [+ alpha * exp(-beta * (1 - x^ . keys)) @ values]       (the bracket: Tip-Adapter only)
// and scores them with a softmax over the K classes (single-label) or a sigmoid per class (multi-label).
//
// Methods (each fits on n labeled, L2-normalized embeddings):
//   Linear      L2-regularized logistic regression, scikit-learn's LogisticRegression objective
//                 C * sum_i loss_i + 1/2 ||W||^2   (intercept b not penalized)
//               loss = multinomial cross-entropy (single-label) or a binary cross-entropy per class (multi-label,
//               one logistic per label). C is chosen on a validation split as in the CLIP paper's linear-probe
//               protocol (log-spaced sweep, then refined around the best), then refit on all the data.
//   ZeroInit    the same objective with W started from and regularized toward P = scale * Z (Z: the zero-shot class
//               embeddings, scale: exp(logit_scale)): C * sum_i loss_i + 1/2 ||W - P||^2. With no samples W = P,
//               b = 0: the zero-shot classifier's logits.
//   TipAdapter  training-free (Zhang et al. 2022, "Tip-Adapter: Training-free Adaption of CLIP"): W = scale * Z,
//               b = 0, the cache keys are the n embeddings, the values their one-hot labels; alpha and beta are
//               chosen by leave-one-out accuracy over the shots (each shot scored by the cache without itself).
// Single-label only for ZeroInit and TipAdapter.
//
// The optimizer is libLBFGS (Debian liblbfgs-dev). The C sweep's fits use float products (sgemm) to a loose stop;
// the refit at the chosen C, warm-started from the sweep's fit, is double (dgemm) to the strict stop, as
// scikit-learn's, so its optimum is scikit-learn's. Results are deterministic for a given seed (the seed only drives
// the validation split). Errors: zeroshot::Error (bad shapes, a class without samples when the method needs one,
// non-finite input). Thread safety: every function is reentrant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace zeroshot::classify {

enum class FewShotMethod { Linear, ZeroInit, TipAdapter };
const char* method_name(FewShotMethod m);             // "linear", "zero-init", "tip-adapter"
FewShotMethod parse_method(const std::string& name);  // throws zeroshot::Error on an unknown name

// n labeled embeddings. Single-label: y[i] in [0, num_classes). Multi-label: targets is n x num_classes of 0/1.
struct LabeledEmbeddings {
  size_t n = 0, dim = 0, num_classes = 0;
  std::vector<float> x;  // n x dim
  std::vector<int> y;
  std::vector<uint8_t> targets;
  bool multi_label = false;
};

// Returns a copy with the rows L2-normalized (as l2_normalize_rows).
LabeledEmbeddings normalized(LabeledEmbeddings d);

struct LogisticOptions {
  double C = 1.0;
  bool fit_intercept = true;
  const float* prior = nullptr;  // num_classes x dim: regularize toward this (and start there); nullptr: zeros
  double epsilon = 1e-6;         // stop when ||grad|| < epsilon * max(1, ||w||) (libLBFGS's test)
  int max_iterations = 2000;
  // Products in float (sgemm) instead of double, sums over rows still double: about twice as fast, but the optimum
  // is only float-accurate (the C sweep's fits; the final fit and the scikit-learn parity are double).
  bool single_precision = false;
  double delta = 0;  // > 0: also stop when the objective fell by less than delta (relative) over 3 iterations
};

struct LogisticFit {
  std::vector<double> w;  // num_classes x dim
  std::vector<double> b;  // num_classes (zeros without an intercept)
  double objective = 0;   // the objective above at (w, b)
  int status = 0;         // libLBFGS's return code (0: converged; negative: stopped early, e.g. rounding)
};

// Minimizes the objective of Linear (prior == nullptr) or ZeroInit (prior set) for one C. `start`: a warm start
// (w then b, as LogisticFit) or nullptr (the prior, or zeros).
LogisticFit fit_logistic(const LabeledEmbeddings& d, const LogisticOptions& opt, const LogisticFit* start = nullptr);

// The objective at (w, b) in double (for tests and reports).
double logistic_objective(const LabeledEmbeddings& d, const LogisticOptions& opt, const std::vector<double>& w,
                          const std::vector<double>& b);

struct Head {
  FewShotMethod method = FewShotMethod::Linear;
  bool multi_label = false;
  size_t num_classes = 0, dim = 0;
  std::vector<float> weight;  // num_classes x dim
  std::vector<float> bias;    // num_classes
  // Tip-Adapter's cache (empty otherwise): keys num_keys x dim (normalized), values num_keys x num_classes.
  std::vector<float> keys, values;
  float alpha = 0, beta = 0;
  // How it was chosen (recorded in the head file).
  double C = 0;
  size_t train = 0, validation = 0;
  double validation_score = 0;  // the chosen setting's validation accuracy (multi-label: -mean BCE); NaN: none
  size_t num_keys() const { return dim ? keys.size() / dim : 0; }
};

struct FitOptions {
  FewShotMethod method = FewShotMethod::Linear;
  uint64_t seed = 0;
  const float* zero_shot = nullptr;  // num_classes x dim normalized class embeddings (ZeroInit, TipAdapter)
  float scale = 100.f;               // exp(logit_scale) (ZeroInit, TipAdapter)
  double validation_fraction = 0.25;
  // Linear / ZeroInit: the C sweep (the CLIP paper's linear-probe protocol). Coarse: 10^lo, 10^(lo + step), ..
  // and 10^hi; then `refine` rounds that halve the step and try the best value's two neighbours at it (4 rounds
  // from 2 decades: 8 values per decade around the best). The defaults take 7 + 8 fits.
  int log10_c_lo = -6, log10_c_hi = 6, log10_c_step = 2, refine = 4;
};

// Fits a head (see the methods above). A class with no samples is an error (Linear: it could never be predicted;
// ZeroInit / TipAdapter accept it: it keeps its zero-shot weights), as is n == 0 for Linear.
Head fit_head(const LabeledEmbeddings& data, const FitOptions& opt);

// The validation split: per class (single-label; multi-label: over all rows), a seeded shuffle holds out
// floor(fraction * count) rows, none from a class of one row. Returns the held-out row indices, ascending.
std::vector<size_t> validation_rows(const LabeledEmbeddings& d, double fraction, uint64_t seed);

// Up to `k` rows per class (single-label: by label; multi-label: a row is taken while one of its labels has fewer
// than k), from a seeded shuffle of each class's rows; the k-shot rows are a prefix of the (k+1)-shot rows' order,
// so the single-label sets are nested. A class with fewer than k rows gives all it has (short[c] = its count when
// `short_classes`). Returns ascending row indices.
std::vector<size_t> select_shots(const LabeledEmbeddings& d, size_t k, uint64_t seed,
                                 std::vector<std::pair<size_t, size_t>>* short_classes = nullptr);

// The given rows of d, in the order given.
LabeledEmbeddings rows_of(const LabeledEmbeddings& d, const std::vector<size_t>& rows);

// Logits (num_classes) of x (dim floats, any norm).
std::vector<float> head_logits(const Head& h, const float* x);
// Softmax (single-label) or sigmoid (multi-label) of head_logits.
std::vector<float> head_scores(const Head& h, const float* x);

// The head file: safetensors with tensors weight, bias (and keys, values for Tip-Adapter), F32, and string metadata
// (format "zeroshot-head", method, multi_label, labels as a JSON array, the model fingerprint and name, alpha, beta,
// C, ...). `extra` adds metadata entries.
void save_head(const std::string& path, const Head& h, const std::vector<std::string>& labels,
               const std::string& model_fingerprint, const std::map<std::string, std::string>& extra = {});

struct LoadedHead {
  Head head;
  std::vector<std::string> labels;
  std::map<std::string, std::string> metadata;
};
// Reads and validates a head file (shapes, dtypes, finite values, labels); when `model_fingerprint` is not empty,
// refuses a head fitted for another model. Throws zeroshot::Error naming the file.
LoadedHead load_head(const std::string& path, const std::string& model_fingerprint = "");

// Checks that given labels are the head's (same names, same order); throws zeroshot::Error naming the file.
void check_head_labels(const std::string& path, const LoadedHead& h, const std::vector<std::string>& labels);

}  // namespace zeroshot::classify
