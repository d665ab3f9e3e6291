// The zeroshot command line, run as a user runs it: output forms, exit codes, one-line errors for bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/version.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

// Runs the built binary with `args`, stdin closed, HF cache and label cache isolated, offline.
CliResult zeroshot_cli(const Args& args) { return run_cli(args); }

size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// A copy of a fixture model in a temp folder (big files symlinked), to break one thing at a time.
struct ModelCopy {
  TempDir tmp{"model"};
  const fs::path dir = tmp.path;
  explicit ModelCopy(const std::string& model) {
    for (const auto& e : fs::directory_iterator(clip_dir(model)))
      fs::create_symlink(e.path(), dir / e.path().filename());
  }
  void replace(const std::string& name, const std::string& bytes) {
    fs::remove(dir / name);
    std::ofstream(dir / name, std::ios::binary) << bytes;
  }
  void edit_config(const std::function<void(io::Json&)>& f) {
    io::Json j = io::load_json((dir / "config.json").string());
    f(j);
    replace("config.json", j.dump(2));
  }
  std::string path() const { return dir.string(); }
};

void expect_one_line_error(const CliResult& r, const std::string& must_name, const std::string& what = "") {
  EXPECT_NE(r.code, 0);
  EXPECT_LT(r.code, 128) << "killed by a signal";
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(must_name), std::string::npos) << r.err;
  if (!what.empty()) {
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  }
}

}  // namespace

TEST(Cli, ClassifyJsonMatchesEveryZeroShotCase) {
  // Every case, in one CLI run per (model, labels, templates) with all of its images: a run per case cost a model
  // load each (126 runs, most of this test's time under ASan). The images are encoded in batches then, and each
  // line is still checked against its own case: a result that depended on its batch would fail here.
  for (const auto& model : clip_models()) {
    Expected exp(model);
    std::map<Args, std::vector<const io::Json*>> runs;  // labels + templates -> the cases
    for (const auto& c : exp.json["zero_shot"]) {
      std::string labels;
      for (const auto& l : c["labels"]) {
        if (!labels.empty()) labels += ',';
        labels += l.get<std::string>();
      }
      Args key = {"--labels", labels};
      for (const auto& t : c["templates"]) key = key + Args{"--template", t.get<std::string>()};
      runs[key].push_back(&c);
    }
    size_t checked = 0;
    for (const auto& [key, cases] : runs) {
      Args args = Args{"classify", "--model", clip_dir(model), "--format", "json"} + key;
      for (const io::Json* c : cases) args.push_back(image_path((*c)["image"].get<std::string>()));
      CliResult r = zeroshot_cli(args);
      ASSERT_EQ(r.code, 0) << r.err;
      auto lines = json_lines(r.out);
      ASSERT_EQ(lines.size(), cases.size());
      for (size_t i = 0; i < cases.size(); ++i) {
        const io::Json& c = *cases[i];
        EXPECT_EQ(lines[i]["image"], image_path(c["image"].get<std::string>()));
        const auto& got = lines[i]["result"];
        const auto& want = c["result"];
        ASSERT_EQ(got.size(), want.size());
        for (size_t k = 0; k < got.size(); ++k) {
          EXPECT_EQ(got[k]["label"], want[k]["label"]);
          EXPECT_NEAR(got[k]["score"].get<double>(), want[k]["score"].get<double>(), 1e-4);
        }
        ++checked;
      }
    }
    EXPECT_EQ(checked, exp.json["zero_shot"].size());
  }
}

TEST(Cli, ClassifyFolderTopKAndTable) {
  const std::string m = clip_dir("clip-tiny-quickgelu");
  // A folder: every decodable image in sorted order, bad_* files reported (exit 1) without stopping the others.
  CliResult r =
      zeroshot_cli({"classify", "-m", m, "-l", "cat,dog,car", "-k", "2", "-f", "json", fixtures() + "/images"});
  EXPECT_EQ(r.code, 1);
  auto lines = json_lines(r.out);
  size_t ok = 0, bad = 0;
  std::string prev;
  for (const auto& l : lines) {
    const std::string img = l["image"];
    EXPECT_LT(prev, img);
    prev = img;
    if (l.contains("result")) {
      ++ok;
      EXPECT_EQ(l["result"].size(), 2u);
      EXPECT_GE(l["result"][0]["score"].get<double>(), l["result"][1]["score"].get<double>());
    } else {
      ++bad;
      EXPECT_NE(img.find("bad_"), std::string::npos);
      EXPECT_NE(l["error"].get<std::string>().find(img), std::string::npos);
    }
  }
  EXPECT_EQ(ok, 21u);
  EXPECT_EQ(bad, 4u);
  EXPECT_NE(r.err.find("4 of 25 images could not be read"), std::string::npos) << r.err;

  // Inputs may follow the options: a path after --labels / --template is an input, not another label.
  r = zeroshot_cli({"classify", "-m", m, "-l", "cat,dog", "-t", "a photo of a {}.", "-f", "json",
                    image_path("chelsea.png"), image_path("rocket.jpg")});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(json_lines(r.out).size(), 2u);
  EXPECT_EQ(json_lines(r.out)[0]["result"].size(), 2u);

  // The built-in ImageNet set (CLIP's names, "missile" and "sunglasses" twice each, as published).
  r = zeroshot_cli({"classify", "-m", m, "-l", "imagenet", "-k", "3", "-f", "json", image_path("chelsea.png")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json_lines(r.out)[0]["result"].size(), 3u);
  r = zeroshot_cli({"classify", "-m", m, "-l", "cat,cat", image_path("chelsea.png")});
  EXPECT_NE(r.err.find("given twice"), std::string::npos) << r.err;

  r = zeroshot_cli({"classify", "-m", m, "-l", "cat,dog", "-f", "table", image_path("chelsea.png")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("chelsea.png"), std::string::npos);
  EXPECT_NE(r.out.find("  cat"), std::string::npos);
}

TEST(Cli, EmbedKeepsCommandLineOrderAndMatchesReference) {
  const std::string model = "clip-tiny-quickgelu";
  Expected exp(model);
  const TempDir tmp("texts");
  const std::string tf = tmp.file(
      "texts.txt", exp.json["texts"][0].get<std::string>() + "\n" + exp.json["texts"][1].get<std::string>() + "\n");
  const std::string img0 = exp.json["images"][0];
  CliResult r = zeroshot_cli({"embed", "-m", clip_dir(model), "--text", exp.json["texts"][2].get<std::string>(),
                              "--image", image_path(img0), "--text-file", tf, "-f", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["kind"], "text");
  EXPECT_EQ(lines[1]["kind"], "image");
  EXPECT_EQ(lines[2]["input"], exp.json["texts"][0]);
  EXPECT_EQ(lines[3]["input"], exp.json["texts"][1]);
  const auto te = exp.get("text_embeds");
  const auto ie = exp.get("image_embeds");
  const size_t dim = exp.shape("text_embeds")[1];
  auto check = [&](const io::Json& line, const float* want, float scale) {
    const auto got = line["embedding"].get<std::vector<float>>();
    ASSERT_EQ(got.size(), dim);
    EXPECT_LE(max_abs_diff(got.data(), want, dim), kEmbedRelTol * scale);
  };
  check(lines[0], te.data() + 2 * dim, max_abs(te.data(), te.size()));
  check(lines[1], ie.data(), max_abs(ie.data(), ie.size()));
  check(lines[2], te.data(), max_abs(te.data(), te.size()));
  check(lines[3], te.data() + dim, max_abs(te.data(), te.size()));

  r = zeroshot_cli({"embed", "-m", clip_dir(model), "--text", "dog", "--normalize", "-f", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto v = json_lines(r.out)[0]["embedding"].get<std::vector<double>>();
  double n = 0;
  for (double x : v) n += x * x;
  EXPECT_NEAR(n, 1.0, 1e-5);
}

TEST(Cli, EveryBadImageIsAOneLineError) {
  const std::string m = clip_dir("clip-tiny-quickgelu");
  for (const char* bad : {"bad_bomb_60000x60000.png", "bad_empty.png", "bad_not_an_image.jpg", "bad_truncated.jpg"}) {
    CliResult r = zeroshot_cli({"classify", "-m", m, "-l", "cat,dog", "-f", "json", image_path(bad)});
    // stderr: the file's error + the summary line.
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_EQ(count_lines(r.err), 2u) << r.err;
    EXPECT_NE(r.err.find(image_path(bad)), std::string::npos) << r.err;
    r = zeroshot_cli({"embed", "-m", m, "--image", image_path(bad), "-f", "json"});
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_NE(r.err.find(image_path(bad)), std::string::npos) << r.err;
  }
  CliResult r = zeroshot_cli(
      {"classify", "-m", m, "-l", "cat,dog", "--max-megapixels", "0.01", "-f", "json", image_path("chelsea.png")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("chelsea.png"), std::string::npos);
  r = zeroshot_cli({"classify", "-m", m, "-l", "cat,dog", "/no/such/file.jpg"});
  expect_one_line_error(r, "/no/such/file.jpg");
}

TEST(Cli, BrokenModelsAreOneLineErrors) {
  const std::string img = image_path("chelsea.png");
  auto classify = [&](const ModelCopy& mc) {
    return zeroshot_cli({"classify", "-m", mc.path(), "-l", "cat,dog", img});
  };
  {
    ModelCopy mc("clip-tiny-quickgelu");
    const std::string w = read_file(clip_dir("clip-tiny-quickgelu") + "/model.safetensors");
    mc.replace("model.safetensors", w.substr(0, w.size() / 2));
    expect_one_line_error(classify(mc), "model.safetensors", "past the end");
  }
  {
    ModelCopy mc("clip-tiny-quickgelu");
    std::string w = read_file(clip_dir("clip-tiny-quickgelu") + "/model.safetensors");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(w[i]);
    io::Json h = io::Json::parse(w.substr(8, n));
    const uint64_t data_len = w.size() - 8 - n;
    auto& off = h["logit_scale"]["data_offsets"];
    off = {data_len + 16, data_len + 20};
    std::string hs = h.dump();
    hs.resize(n, ' ');  // same header length: the rest of the file is untouched
    ASSERT_LE(h.dump().size(), n);
    mc.replace("model.safetensors", w.substr(0, 8) + hs + w.substr(8 + n));
    expect_one_line_error(classify(mc), "model.safetensors", "logit_scale");
  }
  {
    ModelCopy mc("clip-tiny-quickgelu");
    mc.edit_config([](io::Json& j) { j["vision_config"]["hidden_size"] = 64; });
    expect_one_line_error(classify(mc), "model.safetensors", "expected");
  }
  {
    ModelCopy mc("clip-tiny-quickgelu");
    mc.edit_config([](io::Json& j) { j["model_type"] = "bert"; });
    expect_one_line_error(classify(mc), "config.json", "bert");
  }
  {
    ModelCopy mc("clip-tiny-quickgelu");
    mc.replace("config.json", "{\"model_type\": \"clip\", ");
    expect_one_line_error(classify(mc), "config.json", "invalid JSON");
  }
  {
    ModelCopy mc("clip-tiny-quickgelu");
    fs::remove(mc.dir / "vocab.json");
    expect_one_line_error(classify(mc), mc.path(), "vocab.json");
  }
  {
    ModelCopy mc("clip-tiny-gelu-f16");  // has tokenizer.json: losing merges.txt falls back to it
    fs::remove(mc.dir / "merges.txt");
    CliResult r = classify(mc);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  {
    ModelCopy mc("clip-tiny-quickgelu");
    mc.replace("preprocessor_config.json", "{\"size\": \"big\"}");
    expect_one_line_error(classify(mc), "preprocessor_config.json");
  }
}

TEST(Cli, UsageErrorsAndHelp) {
  for (const char* cmd : {"classify", "embed"}) {
    CliResult r = zeroshot_cli({cmd, "--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("--model"), std::string::npos);
    EXPECT_NE(r.out.find("--format"), std::string::npos);
  }
  CliResult r = zeroshot_cli({"classify", "-m", clip_dir("clip-tiny-quickgelu"), image_path("chelsea.png")});
  expect_one_line_error(r, "labels");
  r = zeroshot_cli(
      {"classify", "-m", clip_dir("clip-tiny-quickgelu"), "-l", "cat", "-t", "no field", image_path("chelsea.png")});
  expect_one_line_error(r, "no field");
  r = zeroshot_cli({"frobnicate"});
  EXPECT_NE(r.code, 0);
  r = zeroshot_cli({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, std::string("zeroshot ") + ZEROSHOT_VERSION + "\n");
  // A hub id offline with an empty cache: a clear error that says so, no network.
  r = zeroshot_cli({"classify", "-m", "some-org/not-cached", "-l", "cat,dog", image_path("chelsea.png")});
  expect_one_line_error(r, "some-org/not-cached", "HF_HUB_OFFLINE");
}

// Every text, template, label, query and path reaches the engine as typed: CLI11's list syntax ("[a,b]" read as
// two values, "[cat]" as cat) is off for every option and positional.
TEST(Cli, EveryValueReachesTheEngineVerbatim) {
  const std::string m = clip_dir("clip-tiny-quickgelu");
  const std::vector<std::string> texts = {"[cat]", "[a,b]", "cat",      "say \"hi\", 'you'",
                                          "-x",    "--y",   "a\u2028b", "[{}]"};
  Args args = {"embed", "-m", m, "-f", "json", "--normalize"};
  for (const auto& t : texts) args.push_back("--text=" + t);
  CliResult r = zeroshot_cli(args);
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), texts.size()) << r.out;
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(lines[i]["input"].get<std::string>(), texts[i]);
  // "[cat]" was embedded with its brackets: not the embedding of "cat".
  EXPECT_NE(lines[0]["embedding"], lines[2]["embedding"]);
  r = zeroshot_cli({"embed", "-m", m, "-f", "json", "--text", "[cat]", "--text", "[a,b]"});
  ASSERT_EQ(r.code, 0) << r.err;
  lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["input"], "[cat]");
  EXPECT_EQ(lines[1]["input"], "[a,b]");

  // Labels and templates: "[x]" labels under "{}" make the same prompts as x labels under "[{}]", and neither is
  // the plain "x" prompt.
  const std::string img = image_path("chelsea.png");
  auto scores = [&](const Args& extra) {
    CliResult c = zeroshot_cli(Args{"classify", "-m", m, "-f", "json", "-q"} + extra + Args{img});
    EXPECT_EQ(c.code, 0) << c.err;
    std::map<std::string, double> s;
    const auto lines = json_lines(c.out);
    if (lines.size() != 1) return s;
    for (const auto& l : lines[0]["result"]) s[l["label"]] = l["score"].get<double>();
    return s;
  };
  const auto bracketed_labels = scores({"-l", "[cat]", "-l", "[dog]", "-t", "{}"});
  const auto bracketed_template = scores({"-l", "cat,dog", "-t", "[{}]"});
  const auto plain = scores({"-l", "cat,dog", "-t", "{}"});
  ASSERT_EQ(bracketed_labels.size(), 2u);
  EXPECT_NEAR(bracketed_labels.at("[cat]"), bracketed_template.at("cat"), 1e-6);
  EXPECT_NE(bracketed_template.at("cat"), plain.at("cat"));
  EXPECT_EQ(scores({"-l", "[a,b]"}).size(), 2u);  // "[a" and "b]": the comma still separates labels

  // Positional paths: the second input, a folder named "[photos]", is a folder, not "photos".
  const TempDir tmp("brackets");
  fs::create_directories(tmp.path / "[photos]");
  fs::create_symlink(image_path("rocket.jpg"), tmp.path / "[photos]" / "rocket.jpg");
  r = zeroshot_cli({"classify", "-m", m, "-l", "cat,dog", "-f", "json", "-q", img, tmp / "[photos]"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(json_lines(r.out).size(), 2u);
  // "--" still ends the options; an unknown option is still a usage error.
  r = zeroshot_cli({"classify", "-m", m, "-l", "cat,dog", "-f", "json", "-q", "--", img, "-x.png"});
  expect_one_line_error(r, "-x.png", "no such file");
  r = zeroshot_cli({"classify", "-m", m, "-l", "cat,dog", img, "--bogus", img});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--bogus"), std::string::npos) << r.err;

  // A search query: the score of each image is its cosine with the embedding of "[cat]" itself.
  const TempDir lib("library");
  fs::create_symlink(image_path("chelsea.png"), lib.path / "chelsea.png");
  fs::create_symlink(image_path("rocket.jpg"), lib.path / "rocket.jpg");
  r = zeroshot_cli({"search", "-m", m, "--db", lib / "index.db", "-d", lib.str(), "-q", "--format", "json", "[cat]"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto hits = json_lines(r.out);
  ASSERT_EQ(hits.size(), 2u);
  r = zeroshot_cli({"embed", "-m", m, "-f", "json", "--normalize", "--text", "[cat]", "--image", lib / "chelsea.png",
                    "--image", lib / "rocket.jpg"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto e = json_lines(r.out);
  const auto q = e[0]["embedding"].get<std::vector<double>>();
  for (const auto& h : hits) {
    const size_t k = h["path"].get<std::string>().find("chelsea") != std::string::npos ? 1 : 2;
    const auto v = e[k]["embedding"].get<std::vector<double>>();
    double dot = 0;
    for (size_t i = 0; i < q.size(); ++i) dot += q[i] * v[i];
    EXPECT_NEAR(h["score"].get<double>(), dot, 1e-4) << h.dump();
  }
}

// The label rule: --labels takes labels (CSV quotes keep commas), --label one label verbatim, --label-set a set; a
// set's name among labels, or one label a typo away from a set's name, is an error that names the option to use.
TEST(Cli, LabelsSetsAndCommas) {
  const std::string m = clip_dir("clip-tiny-quickgelu");
  const std::string img = image_path("chelsea.png");
  const Args base = {"classify", "-m", m, "-f", "json", "-q"};
  auto labels_of = [&](const Args& extra) {
    CliResult r = zeroshot_cli(base + extra + Args{img});
    EXPECT_EQ(r.code, 0) << r.err;
    std::map<std::string, double> s;
    const auto lines = json_lines(r.out);
    if (lines.size() != 1) return s;
    for (const auto& l : lines[0]["result"]) s[l["label"]] = l["score"].get<double>();
    return s;
  };
  // Commas inside quotes; "" is a quote; the same prompts as --label.
  const auto csv = labels_of({"-l", "\"a cat, sitting\", a dog,\"say \"\"hi\"\"\""});
  const auto exact = labels_of({"--label", "a cat, sitting", "--label", "a dog", "--label", "say \"hi\""});
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(csv, exact);
  EXPECT_EQ(csv.count("say \"hi\""), 1u);
  // --label keeps a set's name as a word; --label-set and a bare set name give the set.
  EXPECT_EQ(labels_of({"--label", "imagenet", "--label", "cifar10"}).size(), 2u);
  const auto set = labels_of({"--label-set", "cifar10"});
  EXPECT_EQ(set.size(), 10u);
  EXPECT_EQ(labels_of({"-l", "cifar10"}), set);
  EXPECT_EQ(labels_of({"--label-set", "cifar10", "-l", "a red car"}).size(), 11u);

  CliResult r = zeroshot_cli(base + Args{"-l", "imagnet", img});
  expect_one_line_error(r, "imagnet", "did you mean the built-in label set imagenet?");
  EXPECT_NE(r.err.find("--label-set imagenet"), std::string::npos) << r.err;
  r = zeroshot_cli(base + Args{"--label-set", "imagnet", img});
  expect_one_line_error(r, "--label-set imagnet", "did you mean imagenet?");
  r = zeroshot_cli(base + Args{"-l", "imagenet,cat", img});
  expect_one_line_error(r, "imagenet,cat", "--label-set imagenet");
  r = zeroshot_cli(base + Args{"-l", "\"a cat, sitting", img});
  expect_one_line_error(r, "a cat, sitting", "not closed");
  r = zeroshot_cli(base + Args{"-l", "\"a\" cat,dog", img});
  expect_one_line_error(r, "--labels", "--label");
  r = zeroshot_cli(base + Args{"-l", "cat,,dog", img});
  expect_one_line_error(r, "cat,,dog", "empty label");
  r = zeroshot_cli(base + Args{"-l", "cat,dog", "--templates", "imagnet", img});
  expect_one_line_error(r, "--templates imagnet", "did you mean imagenet?");

  r = zeroshot_cli({"classify", "--help"});
  EXPECT_NE(r.out.find("--label-set"), std::string::npos);
  EXPECT_NE(r.out.find("double quotes"), std::string::npos);
}

// A limit error names the option that changes it, in that option's unit.
TEST(Cli, LimitErrorsNameTheirOption) {
  const std::string m = clip_dir("clip-tiny-quickgelu");
  CliResult r = zeroshot_cli({"classify", "-m", m, "-l", "cat,dog", "--max-megapixels", "0.01", "-f", "json", "-q",
                              image_path("chelsea.png")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("451x300 pixels (0.1353 megapixels) exceeds --max-megapixels 0.01"), std::string::npos) << r.err;
  r = zeroshot_cli({"embed", "-m", m, "-f", "json", "--image", image_path("bad_bomb_60000x60000.png")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("(3600 megapixels) exceeds --max-megapixels 100"), std::string::npos) << r.err;
  r = zeroshot_cli({"classify", "-m", clap_dir("clap-tiny-unfused"), "-l", "dog,rain", "--max-audio-seconds", "1", "-f",
                    "json", "-q", audio_path("chord_3s.wav")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("exceeds the limit of 1 s (--max-audio-seconds)"), std::string::npos) << r.err;
}

// The first run without a network (or offline with an empty cache) says that the model is the default and what to
// do instead, in one line.
TEST(Cli, FirstRunWithoutNetworkSaysWhatToDo) {
  const Args args = {"classify", "-l", "cat,dog", image_path("chelsea.png")};
  CliResult r = zeroshot_cli(args);  // offline, empty cache
  expect_one_line_error(r, "openai/clip-vit-base-patch32", "is the default model");
  for (const char* hint : {"600 MB", "--model DIR", "ZEROSHOT_MODEL", "without --offline"})
    EXPECT_NE(r.err.find(hint), std::string::npos) << hint << ": " << r.err;
  CliOptions o;
  o.offline = false;
  o.env = {{"HF_ENDPOINT", "http://127.0.0.1:9"}};  // nothing listens on the discard port
  r = run_cli(args, o);
  expect_one_line_error(r, "openai/clip-vit-base-patch32", "cannot reach http://127.0.0.1:9");
  EXPECT_NE(r.err.find("is the default model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("HF_ENDPOINT"), std::string::npos) << r.err;
  // A model the user named is not called the default.
  r = run_cli({"classify", "-m", "some-org/not-cached", "-l", "cat,dog", image_path("chelsea.png")}, o);
  expect_one_line_error(r, "some-org/not-cached", "--model DIR");
  EXPECT_EQ(r.err.find("default"), std::string::npos) << r.err;
}

// rclip's habits: search -t/-f/-n/-p; options before the command; `embed photo.jpg` suggests --image.
TEST(Cli, RclipFlagsGlobalOptionsAndHints) {
  const std::string m = clip_dir("clip-tiny-quickgelu");
  const TempDir lib("library");
  fs::create_symlink(image_path("chelsea.png"), lib.path / "chelsea.png");
  fs::create_symlink(image_path("rocket.jpg"), lib.path / "rocket.jpg");
  const Args search = {"search", "-m", m, "--db", lib / "index.db", "-d", lib.str(), "-q"};
  CliResult r = zeroshot_cli(search + Args{"-t", "1", "-f", "a cat"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 1u) << r.out;
  EXPECT_EQ(r.out.rfind(lib.str(), 0), 0u) << r.out;  // a bare path
  r = zeroshot_cli(search + Args{"-n", "-t", "2", "--format", "json", "a cat"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json_lines(r.out).size(), 2u);

  // -p: the protocol from the terminal's variables (or --preview-protocol), each image at most -H pixels tall.
  auto preview = [&](const std::vector<std::pair<std::string, std::string>>& env, const Args& extra = {}) {
    CliOptions o;
    o.env = env;
    return run_cli(search + Args{"-n", "-t", "1", "-p", "-H", "20"} + extra + Args{"a cat"}, o);
  };
  r = preview({{"TERM", "xterm-kitty"}});
  ASSERT_EQ(r.code, 0) << r.err;
  const size_t k = r.out.find("_Ga=T,f=24,s=");
  ASSERT_NE(k, std::string::npos) << r.out.substr(0, 200);
  int w = 0, h = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str() + k, "_Ga=T,f=24,s=%d,v=%d", &w, &h), 2);
  EXPECT_EQ(h, 20);  // chelsea.png is 451x300: shrunk to 20 rows, width in proportion
  EXPECT_NEAR(w, 30, 1);
  r = preview({{"TERM", "xterm-256color"}, {"TERM_PROGRAM", "iTerm.app"}});
  EXPECT_NE(r.out.find("]1337;File=inline=1;size="), std::string::npos) << r.out.substr(0, 200);
  r = preview({{"TERM", "foot"}, {"TERM_PROGRAM", "foot"}});
  EXPECT_NE(r.out.find("\033Pq\"1;1;"), std::string::npos) << r.out.substr(0, 200);
  r = preview({{"TERM", "xterm"}, {"TMUX", "/tmp/tmux-1/default,1,0"}}, {"--preview-protocol", "kitty"});
  EXPECT_NE(r.out.find("\033Ptmux;\033\033_Ga=T"), std::string::npos) << r.out.substr(0, 200);
  r = preview({{"TERM", "dumb"}, {"TERM_PROGRAM", "none"}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("not known to show images"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find('\033'), std::string::npos);
  r = zeroshot_cli(search + Args{"-n", "-p", "-f", "a cat"});
  expect_one_line_error(r, "--preview", "not with");

  // Options before the command apply to it; after it, the command's own win; one it lacks is a usage error.
  const std::string img = image_path("chelsea.png");
  CliResult after = zeroshot_cli({"classify", "-m", m, "--offline", "-q", "-l", "cat,dog", "-f", "json", img});
  ASSERT_EQ(after.code, 0) << after.err;
  r = zeroshot_cli({"-m", m, "--offline", "-q", "classify", "-l", "cat,dog", "-f", "json", img});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, after.out);
  r = zeroshot_cli({"-m", "/no/such/model", "classify", "-m", m, "-l", "cat,dog", "-f", "json", img});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, after.out);
  r = zeroshot_cli({"--precision", "int9", "classify", "-m", m, "-l", "cat,dog", img});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("int9"), std::string::npos) << r.err;
  r = zeroshot_cli({"--threads", "2", "quantize", "-m", m});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--threads does not apply to quantize"), std::string::npos) << r.err;

  r = zeroshot_cli({"embed", "-m", m, "photo.jpg"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("did you mean --image photo.jpg?"), std::string::npos) << r.err;
  r = zeroshot_cli({"embed", "-m", m, "a dog"});
  EXPECT_NE(r.err.find("--text \"a dog\""), std::string::npos) << r.err;
}

// Tables for people: embed's preview of the vector is one bracketed list; bench's numbers are rounded.
TEST(Cli, TablesReadCleanly) {
  const std::string m = clip_dir("clip-tiny-quickgelu");
  CliResult r = zeroshot_cli({"embed", "-m", m, "--text", "a dog", "-f", "table"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '['), 1) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), ']'), 1) << r.out;
  EXPECT_NE(r.out.find(", ...]\n"), std::string::npos) << r.out;

  r = zeroshot_cli({"bench", "-m", m, "--iters", "1", "-f", "table"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string key, value;
  size_t numbers = 0;
  while (lines >> key && std::getline(lines, value)) {
    value.erase(0, value.find_first_not_of(' '));
    if (value.empty() || value.find_first_not_of("0123456789.-e+") != std::string::npos) continue;
    ++numbers;
    const size_t dot = value.find('.'), e = value.find('e');
    if (dot != std::string::npos && e == std::string::npos)
      EXPECT_LE(value.size() - dot - 1, 5u) << key << " " << value;
  }
  EXPECT_GE(numbers, 8u) << r.out;
}
