#include "api/backend.h"

#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <set>

#include "classify/label_cache.h"
#include "io/safetensors.h"
#include "models/int8_weights.h"
#include "util/trace.h"

namespace zeroshot::api {

nn::Precision to_nn_precision(Precision p) {
  switch (p) {
    case Precision::F32: break;
    case Precision::BF16: return nn::Precision::BF16;
    case Precision::Int8: return nn::Precision::Int8;
    case Precision::Int4: return nn::Precision::Int4;
  }
  return nn::Precision::F32;
}

std::shared_ptr<const io::SafeTensorsFile> int8_weights_file(const std::string& dir, Precision p,
                                                             const Int8Capture* capture) {
  // Weights quantized beforehand (`zeroshot quantize`) are used when made from these weights (else ignored: quantized
  // at load, same values). A capturing build writes the file, so it never reads one.
  if (capture || (p != Precision::Int8 && p != Precision::Int4)) return nullptr;
  const char* kind = p == Precision::Int4 ? "int4" : "int8";
  const std::filesystem::path file =
      std::filesystem::path(dir) / (p == Precision::Int4 ? models::kInt4WeightsFile : models::kInt8WeightsFile);
  if (!std::filesystem::exists(file)) return nullptr;
  try {
    return std::make_shared<const io::SafeTensorsFile>(file.string());
  } catch (const Error& e) {
    std::string why = e.what();
    if (why.rfind(file.string() + ": ", 0) == 0) why.erase(0, file.string().size() + 2);
    throw Error(file.string(), std::string("damaged ") + kind + " weights file (" + why +
                                   "); delete it or run `zeroshot quantize` again");
  }
}

PackedWeightsPlan packed_weights_plan(const io::WeightStore& ws, const ModelOptions& opt, const Int8Capture* capture) {
  PackedWeightsPlan plan;
  plan.precision = to_nn_precision(opt.precision);
  const char* env = std::getenv("ZEROSHOT_PACKED_WEIGHTS");
  if (!opt.weights_cache || capture || (env && std::string(env) == "0") || !*nn::packed_layout(plan.precision))
    return plan;
  const std::string cache = classify::resolve_cache_dir("");
  if (cache.empty()) return plan;
  trace::Phase phase("packed weights file");
  // The file must have been made from these weights: their fingerprint (which names the file, with their paths),
  // and the size and modification time of each weights file, so that weights edited in place (where the
  // fingerprint's samples might miss the change) never meet stale panels.
  const std::string fp = models::weights_fingerprint(ws);
  plan.identity = fp;
  std::set<std::string> files;
  for (const std::string& n : ws.names()) {
    std::error_code aec;
    const std::filesystem::path abs = std::filesystem::absolute(ws.get(n).file, aec);
    files.insert(aec ? ws.get(n).file : abs.string());
  }
  plan.sources.assign(files.begin(), files.end());
  std::string sources_id;
  if (!models::source_identity(plan.sources, &sources_id)) return plan;
  plan.identity += sources_id;
  const std::filesystem::path file = std::filesystem::path(cache) / "packed-weights" /
                                     models::packed_weights_cache_name(fp, plan.sources, plan.precision);
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    try {
      plan.file = std::make_shared<const models::PackedWeightsFile>(file.string(), plan.identity, plan.precision);
      // Its access time set to now, explicitly: the last use that `zeroshot cache prune` goes by (mapping does not
      // update it, and noatime / relatime mounts would not). The modification time stays the write's. Best effort.
      const struct timespec now_atime[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
      ::utimensat(AT_FDCWD, file.c_str(), now_atime, 0);
      trace::note("packed weights mapped from the cache");
      return plan;
    } catch (const Error& e) {
      trace::note((std::string("packed weights file not used, rebuilt: ") + e.what()).c_str());
    }
  }
  plan.write_to = file.string();
  return plan;
}

void save_packed_weights(PackedWeightsPlan& plan) {
  if (plan.write_to.empty()) return;
  trace::Phase phase("write packed weights");
  try {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(plan.write_to).parent_path(), ec);
    models::write_packed_weights(plan.write_to, plan.identity, plan.precision, plan.records, plan.sources);
    for (const std::string& old : models::remove_superseded_packed_weights(plan.write_to))
      trace::note(("removed the packed weights of an older version of these weights: " + old).c_str());
  } catch (const Error& e) {
    trace::note((std::string("packed weights not saved: ") + e.what()).c_str());
  }
  plan.records.clear();
}

std::vector<float> concat_inputs(const Input* const* inputs, size_t n) {
  if (n == 0) return {};
  const size_t per = inputs[0]->values.size();
  std::vector<float> v(n * per);
  for (size_t i = 0; i < n; ++i) {
    if (inputs[i]->values.size() != per) throw Error("encode", "inputs of different sizes in one batch");
    std::memcpy(v.data() + i * per, inputs[i]->values.data(), per * sizeof(float));
  }
  return v;
}

image::RgbImage rgb_image(const uint8_t* rgb, int width, int height, const std::string& name) {
  if (width <= 0 || height <= 0)
    throw Error(name, "invalid image size " + std::to_string(width) + "x" + std::to_string(height));
  image::RgbImage img;
  img.width = width;
  img.height = height;
  img.pixels.assign(rgb, rgb + static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
  return img;
}

std::vector<std::string> names_with_prefix(const std::vector<std::string>& names,
                                           const std::vector<std::string>& prefixes) {
  std::vector<std::string> out;
  for (const std::string& n : names)
    for (const std::string& p : prefixes)
      if (n.rfind(p, 0) == 0) {
        out.push_back(n);
        break;
      }
  return out;
}

}  // namespace zeroshot::api
