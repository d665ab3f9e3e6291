// zeroshot quantize: writes a model's int8 or int4 weights once (zeroshot-int8.safetensors /
// zeroshot-int4.safetensors, docs/quantized-format.md), so that every later `--precision int8` (int4) load reads
// them instead of quantizing the f32 weights.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "api/backend.h"
#include "cli_common.h"
#include "commands.h"
#include "io/hub.h"
#include "models/int8_weights.h"
#include "util/progress.h"

namespace zeroshot::cli {

namespace {

namespace fs = std::filesystem;

struct QuantizeArgs {
  std::string model = kDefaultModel;
  std::string revision = "main";
  bool offline = false;
  std::string precision = "int8";
  std::string output;
  bool in_place = false;
  bool quiet = false;
};

// A snapshot folder of the Hugging Face hub cache (<cache>/models--org--name/snapshots/<commit>): files there
// are symlinks into blobs shared with Python tools, and a new file would be dropped by their cache cleaning.
bool is_hub_snapshot(const fs::path& dir) {
  const fs::path d = dir.lexically_normal();
  const fs::path parent = d.has_filename() ? d.parent_path() : d.parent_path().parent_path();
  return parent.filename() == "snapshots" && parent.parent_path().filename().string().rfind("models--", 0) == 0;
}

// -o DIR: a new model folder beside the original: a symbolic link to each of the model's files (nothing is
// copied: the weights may be gigabytes) and the int8 file, so that `-m DIR --precision int8` reads it. Links
// left by an earlier run are replaced; any other file already there is refused rather than overwritten.
void link_model_files(const fs::path& model, const fs::path& out) {
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw Error(out.string(), "cannot create the output folder: " + ec.message());
  for (const auto& e : fs::directory_iterator(model, ec)) {
    const std::string name = e.path().filename().string();
    if (name == models::kInt8WeightsFile || name == models::kInt4WeightsFile || !e.is_regular_file(ec))
      continue;  // regular files, through links
    const fs::path link = out / name;
    if (fs::is_symlink(fs::symlink_status(link, ec))) fs::remove(link, ec);
    else if (fs::exists(fs::symlink_status(link, ec)))
      throw Error(link.string(),
                  "already exists and is not a link made by `zeroshot quantize`: give an empty or "
                  "new folder to -o");
    fs::create_symlink(fs::absolute(e.path()), link, ec);
    if (ec) throw Error(link.string(), "cannot link to the model's file: " + ec.message());
  }
  if (ec) throw Error(model.string(), "cannot list the model folder: " + ec.message());
}

int run(const QuantizeArgs& a) {
  if (a.precision != "int8" && a.precision != "int4")
    throw Error("--precision " + a.precision, "only int8 and int4 have a weights file");
  const bool int4 = a.precision == "int4";
  const char* file_name = int4 ? models::kInt4WeightsFile : models::kInt8WeightsFile;
  if (a.output.empty() && !a.in_place)
    throw Error(a.model,
                "quantize writes into the model folder only with --in-place (it may be shared); or give -o "
                "DIR for a new folder holding links to the model's files and the int8 file");
  std::error_code ec;
  if (a.in_place && io::is_hub_id(a.model) && !fs::exists(a.model, ec))  // before any download
    throw Error(a.model,
                "a hub id: its files live in the Hugging Face hub cache, shared with other tools; quantize a "
                "copy of the model in a folder of your own (huggingface-cli download " +
                    a.model + " --local-dir DIR), or write a new folder with -o DIR");
  io::HubOptions hub;
  hub.revision = a.revision;
  hub.offline = a.offline;
  hub.progress = !a.quiet;
  const std::string dir = io::resolve_model(a.model, hub);
  std::string out = a.output;
  std::string folder;  // the model folder that now has the int8 file: printed; "" when -o names a file
  if (a.in_place) {
    if (is_hub_snapshot(dir))
      throw Error(dir,
                  "a Hugging Face hub cache snapshot (shared with other tools): quantize a copy of the model "
                  "in a folder of your own (huggingface-cli download " +
                      a.model +
                      " --local-dir DIR), or "
                      "write a new folder with -o DIR");
    // A folder without write permission bits is read-only to us even as root (whom access() lets write anywhere):
    // a shared or mounted model folder is not ours to add files to.
    struct stat st {};
    if (::access(dir.c_str(), W_OK) != 0 || (::stat(dir.c_str(), &st) == 0 && (st.st_mode & 0222) == 0))
      throw Error(dir, "read-only folder: quantize a writable copy of the model, or write a new folder with -o DIR");
    folder = dir;
    out = (fs::path(dir) / file_name).string();
  } else if (fs::path(out).extension() != ".safetensors") {
    if (fs::exists(out, ec) && fs::equivalent(out, dir, ec))
      throw Error(out, "is the model folder itself: give --in-place to write into it");
    link_model_files(dir, out);
    folder = out;
    out = (fs::path(out) / file_name).string();
  }

  const auto t0 = std::chrono::steady_clock::now();
  if (!a.quiet) std::fprintf(stderr, "quantizing %s to %s -> %s\n", dir.c_str(), a.precision.c_str(), out.c_str());
  {
    // Every family's int8 layers, as its own int8 load quantizes them (api::save_int8_weights builds the model).
    util::ProgressBar bar(a.precision + " weights", 0, !a.quiet, 0, util::ProgressUnit::Items);
    api::save_int8_weights(
        dir, out, [&](size_t done) { bar.update(done); }, int4 ? Precision::Int4 : Precision::Int8);
    bar.finish();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto bytes = fs::file_size(out, ec);
  if (!a.quiet)
    std::fprintf(stderr, "wrote %s (%s in %.1f s); `--precision %s` loads of %s now read it\n", out.c_str(),
                 util::format_bytes(ec ? 0.0 : static_cast<double>(bytes)).c_str(), s, a.precision.c_str(),
                 folder.empty() ? "a model whose folder holds it" : ("-m " + folder).c_str());
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace

void add_quantize_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* c =
      app.add_subcommand("quantize", "Write a model's int8 or int4 weights once, for fast --precision int8/int4 loads");
  c->add_option("-m,--model", a->model, "Hugging Face model folder (or hub id, with -o)")
      ->default_val(std::string(kDefaultModel))
      ->envname("ZEROSHOT_MODEL");
  c->add_option("--revision", a->revision, "Hub revision (branch, tag or commit) for hub ids")->default_val("main");
  c->add_flag("--offline", a->offline, "Never use the network (also HF_HUB_OFFLINE=1)");
  c->add_option("--precision", a->precision,
                "The stored precision: int8 (zeroshot-int8.safetensors) or int4 (zeroshot-int4.safetensors)")
      ->default_val("int8")
      ->check(CLI::IsMember({"int8", "int4"}));
  auto* in_place = c->add_flag("--in-place", a->in_place,
                               "Write zeroshot-int8.safetensors into the model folder itself (the file a load there "
                               "looks for)");
  c->add_option("-o,--output", a->output,
                "A new model folder: links to the model's files + zeroshot-int8.safetensors (or a path ending in "
                ".safetensors: just the int8 file)")
      ->excludes(in_place);
  c->add_flag("-q,--quiet", a->quiet, "No progress messages");
  c->footer(
      "The file holds every encoder layer's int8 weights and per-channel scales, or with --precision int4 the 4-bit\n"
      "weights with a scale and minimum per group of 32 inputs (docs/quantized-format.md), and the\n"
      "fingerprint of the weights it was made from. A later load with --precision int8 uses it when the fingerprint\n"
      "matches (same embeddings as quantizing at load, bit for bit; less memory, faster start) and ignores it\n"
      "otherwise; a damaged file is an error naming it. Prints the path written.\n"
      "One of --in-place (into the model folder; refused for hub-cache snapshots and read-only folders) or -o is\n"
      "required: a model folder may be shared, and a file added there changes what every int8 load of it reads.\n"
      "Exit code: 0 written, 2 error.");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
