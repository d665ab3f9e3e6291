// Audio models (CLAP) through the public API and the CLI, against the reference outputs in
// ../shared/fixtures/clap/<model>/expected.{json,safetensors} (tolerances: fixtures/clap/README.md).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

const std::vector<std::string> kClapModels = {"clap-tiny-unfused", "clap-tiny-fused"};
const std::vector<std::string> kBadFiles = {"bad_empty.wav", "bad_huge_header.wav", "bad_text.wav", "bad_truncated.wav",
                                            "bad_zero_channels.wav"};

ClassifierOptions no_cache() {
  ClassifierOptions o;
  o.cache_dir = "none";
  return o;
}

// Scores within 5e-4 of the reference for every label; the same order except labels whose reference scores
// differ by less than 5e-4, which may swap.
void expect_zero_shot(const std::vector<LabelScore>& got, const io::Json& result, const std::string& what) {
  ASSERT_EQ(got.size(), result.size()) << what;
  std::map<std::string, float> ref;
  for (const auto& r : result) ref[r["label"].get<std::string>()] = r["score"].get<float>();
  for (size_t k = 0; k < got.size(); ++k) {
    ASSERT_TRUE(ref.count(got[k].label)) << what << ": " << got[k].label;
    EXPECT_NEAR(got[k].score, ref[got[k].label], 5e-4) << what << ": " << got[k].label;
    const float ref_at_k = result[k]["score"].get<float>();
    if (got[k].label != result[k]["label"].get<std::string>()) {
      EXPECT_LT(std::fabs(ref[got[k].label] - ref_at_k), 5e-4) << what << ": rank " << k << " is " << got[k].label;
    }
  }
}

class ClapApi : public ::testing::TestWithParam<std::string> {
 protected:
  static std::map<std::string, std::unique_ptr<Model>>& models() {
    static std::map<std::string, std::unique_ptr<Model>> m;
    return m;
  }
  const Model& model() {
    auto& m = models()[GetParam()];
    if (!m) m = Model::load(clap_dir(GetParam()));
    return *m;
  }
};

TEST_P(ClapApi, Basics) {
  const ClapExpected ex(GetParam());
  EXPECT_EQ(model().modality(), Modality::Audio);
  EXPECT_STREQ(model().model_type(), "clap");
  EXPECT_STREQ(model().default_template(), "This is a sound of {}.");
  // expected.json stores exp(logit_scale_a), the factor itself.
  EXPECT_NEAR(model().logit_scale(), ex.json["logit_scale_a"].get<float>(),
              1e-5 * ex.json["logit_scale_a"].get<float>());
  EXPECT_EQ(model().embedding_dim(), static_cast<size_t>(ex.tensors.tensors().at("audio_embeds").shape[1]));
  EXPECT_EQ(model().fingerprint().size(), 32u);
}

TEST_P(ClapApi, AudioEmbedsFromFiles) {
  const ClapExpected ex(GetParam());
  const auto files = ex.audio_files();
  std::vector<std::string> paths;
  for (const auto& f : files) paths.push_back(audio_path(f));
  const Embeddings got = model().embed_audio_files(paths);
  const std::vector<float> want = ex.get("audio_embeds");
  const size_t dim = got.dim;
  ASSERT_EQ(want.size(), files.size() * dim);
  for (size_t i = 0; i < files.size(); ++i) {
    const float* w = want.data() + i * dim;
    // Resampled files too: the decoder resamples as the pipeline's ffmpeg does, bit for bit (they were held to
    // cosine >= 0.99 with libsoxr).
    EXPECT_LE(max_abs_diff(got.row(i), w, dim), kAudioEmbedRelTol * max_abs(w, dim)) << files[i];
  }
  // The streaming form gives the same rows (batches of 3, decoding on worker threads).
  size_t calls = 0;
  model().embed_audio_files(paths, 3, [&](size_t i, const float* e, const std::string& err) {
    EXPECT_EQ(i, calls++);
    EXPECT_TRUE(err.empty()) << err;
    if (e) {
      EXPECT_LE(max_abs_diff(e, got.row(i), dim), 1e-6f) << files[i];
    }
    return true;
  });
  EXPECT_EQ(calls, files.size());
}

TEST_P(ClapApi, TextEmbedsFromStrings) {
  const ClapExpected ex(GetParam());
  std::vector<std::string> texts;
  for (const auto& t : ex.json["texts"]) texts.push_back(t.get<std::string>());
  const Embeddings got = model().embed_texts(texts);
  const std::vector<float> want = ex.get("text_embeds");
  ASSERT_EQ(want.size(), texts.size() * got.dim);
  for (size_t i = 0; i < texts.size(); ++i) {
    const float* w = want.data() + i * got.dim;
    EXPECT_LE(max_abs_diff(got.row(i), w, got.dim), kTextEmbedRelTol * max_abs(w, got.dim)) << texts[i];
  }
}

TEST_P(ClapApi, ZeroShotCasesThroughTheClassifier) {
  const ClapExpected ex(GetParam());
  std::map<std::string, std::unique_ptr<ZeroShotClassifier>> classifiers;  // by labels + template
  size_t cases = 0;
  for (const auto& c : ex.json["zero_shot"]) {
    const std::string file = c["audio"].get<std::string>();
    std::vector<std::string> labels;
    std::string key;
    for (const auto& l : c["candidate_labels"]) labels.push_back(l.get<std::string>()), key += labels.back() + "\n";
    const std::string tmpl = c["hypothesis_template"].get<std::string>();
    key += tmpl;
    auto& clf = classifiers[key];
    if (!clf) {
      // The default template is the pipeline's: pass none when the case used it.
      std::vector<std::string> templates;
      if (tmpl != "This is a sound of {}.") templates.push_back(tmpl);
      clf = std::make_unique<ZeroShotClassifier>(model(), labels, templates, no_cache());
      EXPECT_EQ(clf->templates(), std::vector<std::string>{tmpl});
    }
    const auto got = clf->classify_audio(audio_path(file));
    expect_zero_shot(got, c["result"], GetParam() + " " + file + " [" + tmpl + "]");  // resampled files too
    ++cases;
  }
  EXPECT_EQ(cases, ex.json["zero_shot"].size());
  EXPECT_GE(cases, 36u);
}

TEST_P(ClapApi, BadAudioFilesAreOneLineErrors) {
  for (const auto& f : kBadFiles) {
    try {
      (void)model().embed_audio_files({audio_path(f)});
      ADD_FAILURE() << f << " accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(f), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  // Streaming: the bad files report errors, the good one between them still embeds.
  std::vector<std::string> paths = {audio_path(kBadFiles[0]), audio_path("tone_440hz_3s.wav"),
                                    audio_path(kBadFiles[1])};
  std::vector<bool> ok;
  model().embed_audio_files(paths, 2, [&](size_t, const float* e, const std::string& err) {
    ok.push_back(e != nullptr);
    EXPECT_EQ(e == nullptr, !err.empty());
    return true;
  });
  EXPECT_EQ(ok, (std::vector<bool>{false, true, false}));
}

TEST_P(ClapApi, ImagesAreRefused) { EXPECT_THROW((void)model().embed_image_files({image_path("chelsea.png")}), Error); }

TEST_P(ClapApi, MaxAudioSeconds) {
  ModelOptions o;
  o.max_audio_seconds = 5;
  auto m = Model::load(clap_dir(GetParam()), o);
  EXPECT_NO_THROW((void)m->embed_audio_files({audio_path("tone_440hz_3s.wav")}));
  try {
    (void)m->embed_audio_files({audio_path("long_25s.wav")});
    ADD_FAILURE() << "long_25s.wav accepted with max 5 s";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("long_25s.wav"), std::string::npos) << e.what();
  }
}

TEST_P(ClapApi, RandomCropsDependOnTheSeedOnlyForLongClips) {
  ModelOptions o;
  o.audio_crop = AudioCrop::Random;
  o.audio_seed = 1;
  auto a = Model::load(clap_dir(GetParam()), o);
  o.audio_seed = 2;
  auto b = Model::load(clap_dir(GetParam()), o);
  const std::vector<std::string> paths = {audio_path("long_25s.wav"), audio_path("tone_440hz_3s.wav")};
  const Embeddings ea = a->embed_audio_files(paths), ea2 = a->embed_audio_files(paths),
                   eb = b->embed_audio_files(paths);
  const Embeddings det = model().embed_audio_files(paths);
  const size_t d = ea.dim;
  EXPECT_EQ(max_abs_diff(ea.row(0), ea2.row(0), d), 0.f);    // same seed, same crop
  EXPECT_GT(max_abs_diff(ea.row(0), eb.row(0), d), 1e-6f);   // another seed, another crop
  EXPECT_LE(max_abs_diff(ea.row(1), det.row(1), d), 1e-6f);  // short clips: no crop at all
}

INSTANTIATE_TEST_SUITE_P(Models, ClapApi, ::testing::ValuesIn(kClapModels));

TEST(ClipModel, AudioIsRefused) {
  auto m = Model::load(clip_dir("clip-tiny-quickgelu"));
  EXPECT_EQ(m->modality(), Modality::Image);
  EXPECT_STREQ(m->default_template(), "This is a photo of {}.");
  try {
    (void)m->embed_audio_files({audio_path("tone_440hz_3s.wav")});
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("image model"), std::string::npos) << e.what();
  }
}

// ---- the CLI ---------------------------------------------------------------------------------------------------

CliResult cli(const Args& args) { return run_cli(args); }

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// The zero_shot case of expected.json for this file and template.
const io::Json* find_case(const io::Json& ex, const std::string& file, const std::string& tmpl) {
  for (const auto& c : ex["zero_shot"])
    if (c["audio"].get<std::string>() == file && c["hypothesis_template"].get<std::string>() == tmpl) return &c;
  return nullptr;
}

std::vector<LabelScore> to_scores(const io::Json& result) {
  std::vector<LabelScore> v;
  for (const auto& r : result) v.push_back({r["label"].get<std::string>(), r["score"].get<float>()});
  return v;
}

TEST(AudioCli, ClassifyFileWithBuiltInEsc50Labels) {
  for (const auto& model : kClapModels) {
    const ClapExpected ex(model);
    const io::Json* c = find_case(ex.json, "chord_3s.wav", "This is a sound of {}.");
    ASSERT_NE(c, nullptr);
    const CliResult r =
        cli({"classify", "-q", "-m", clap_dir(model), "-l", "esc50", "-f", "json", audio_path("chord_3s.wav")});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto out = json_lines(r.out);
    ASSERT_EQ(out.size(), 1u) << r.out;
    EXPECT_EQ(out[0]["audio"].get<std::string>(), audio_path("chord_3s.wav"));
    expect_zero_shot(to_scores(out[0]["result"]), (*c)["result"], model + " cli chord_3s.wav");
  }
}

// --multi-label on audio: "audio" keys, and each label's probability computed here from the engine's cosines
// (ZeroShotClassifier with the default template): p = 1 / (1 + exp(s (cos(x, negatives) - cos(x, label)))), the
// negatives the documented neutral names ("something", "an object") ensembled into one class.
TEST(AudioCli, MultiLabelTaggingOfAudio) {
  const std::vector<std::string> files = {"chord_3s.wav", "speech_espeak.wav", "long_25s.wav"};
  const std::vector<std::string> labels = {"dog", "rain", "siren", "crying baby"};
  for (const auto& model : kClapModels) {
    Args args = {"classify", "--multi-label", "-q", "-m", clap_dir(model)};
    args = args + Args{"-l", "dog,rain,siren,crying baby", "-f", "json"};
    std::vector<std::string> paths;
    for (const auto& f : files) {
      paths.push_back(audio_path(f));
      args.push_back(paths.back());
    }
    const CliResult r = cli(args);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto out = json_lines(r.out);
    ASSERT_EQ(out.size(), files.size()) << r.out;

    auto m = Model::load(clap_dir(model));
    const ZeroShotClassifier pos(*m, labels, {}, no_cache());
    const ZeroShotClassifier neg(*m, std::vector<std::vector<std::string>>{{"something", "an object"}}, {}, no_cache());
    const Embeddings emb = m->embed_audio_files(paths);
    for (size_t i = 0; i < files.size(); ++i) {
      EXPECT_EQ(out[i]["audio"].get<std::string>(), paths[i]);
      ASSERT_EQ(out[i]["result"].size(), labels.size()) << out[i].dump();
      const auto cos = pos.cosines(emb.row(i));
      const float cn = neg.cosines(emb.row(i))[0];
      for (const auto& t : out[i]["result"]) {
        const size_t k = std::find(labels.begin(), labels.end(), t["label"].get<std::string>()) - labels.begin();
        ASSERT_LT(k, labels.size()) << t.dump();
        const double p = 1.0 / (1.0 + std::exp(double(m->logit_scale()) * (double(cn) - double(cos[k]))));
        EXPECT_NEAR(t["score"].get<double>(), p, 1e-5) << model << " " << files[i] << " " << labels[k];
        EXPECT_EQ(t["flagged"].get<bool>(), t["score"].get<double>() >= t["threshold"].get<double>());
      }
    }
  }
  // A bad file among them: an "audio" error line, exit 1.
  const CliResult bad = cli({"classify", "--multi-label", "-q", "-m", clap_dir("clap-tiny-unfused"), "-l", "dog,rain",
                             "-f", "json", audio_path("chord_3s.wav"), audio_path("bad_text.wav")});
  EXPECT_EQ(bad.code, 1);
  const auto out = json_lines(bad.out);
  ASSERT_EQ(out.size(), 2u) << bad.out;
  EXPECT_TRUE(out[1].contains("error")) << bad.out;
  EXPECT_EQ(out[1]["audio"].get<std::string>(), audio_path("bad_text.wav"));
}

TEST(AudioCli, ClassifyFolderWithTemplate) {
  const std::string model = "clap-tiny-fused";
  const ClapExpected ex(model);
  const io::Json* first = find_case(ex.json, "tone_440hz_3s.wav", "{}");
  ASSERT_NE(first, nullptr);
  std::string labels;
  for (const auto& l : (*first)["candidate_labels"]) labels += (labels.empty() ? "" : ",") + l.get<std::string>();
  // A folder with a few good files, an image (skipped: not an audio extension) and nothing else.
  const TempDir tmp("audio_folder");
  const fs::path dir = tmp.path;
  fs::create_directories(dir / "sub");
  const std::vector<std::string> files = {"tone_440hz_3s.wav", "mix.flac", "stereo_3s.wav"};
  fs::copy_file(audio_path(files[0]), dir / files[0]);
  fs::copy_file(audio_path(files[1]), dir / "sub" / files[1]);
  fs::copy_file(audio_path(files[2]), dir / files[2]);
  fs::copy_file(image_path("chelsea.png"), dir / "chelsea.png");
  const CliResult r =
      cli({"classify", "-q", "-m", clap_dir(model), "-l", labels, "-t", "{}", "-f", "json", dir.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = json_lines(r.out);
  ASSERT_EQ(out.size(), 3u) << r.out;
  // Sorted by path: stereo_3s.wav, sub/mix.flac, tone_440hz_3s.wav.
  const std::vector<std::string> order = {"stereo_3s.wav", "mix.flac", "tone_440hz_3s.wav"};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NE(out[i]["audio"].get<std::string>().find(order[i]), std::string::npos) << out[i].dump();
    const io::Json* c = find_case(ex.json, order[i], "{}");
    ASSERT_NE(c, nullptr) << order[i];
    expect_zero_shot(to_scores(out[i]["result"]), (*c)["result"], "cli folder " + order[i]);
  }
}

TEST(AudioCli, EmbedAudioAndTextsInOrder) {
  const std::string model = "clap-tiny-unfused";
  const ClapExpected ex(model);
  const auto files = ex.audio_files();
  const std::string text = ex.json["texts"][0].get<std::string>();
  const CliResult r = cli({"embed", "-q", "-m", clap_dir(model), "--text", text, "--audio",
                           audio_path("tone_440hz_3s.wav"), "--audio", audio_path("mix.flac"), "-f", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = json_lines(r.out);
  ASSERT_EQ(out.size(), 3u) << r.out;
  EXPECT_EQ(out[0]["kind"].get<std::string>(), "text");
  EXPECT_EQ(out[1]["kind"].get<std::string>(), "audio");
  EXPECT_EQ(out[2]["kind"].get<std::string>(), "audio");
  const std::vector<float> audio = ex.get("audio_embeds"), texts = ex.get("text_embeds");
  const size_t dim = audio.size() / files.size();
  auto row_of = [&](const std::string& f) { return size_t(std::find(files.begin(), files.end(), f) - files.begin()); };
  auto check = [&](const io::Json& e, const float* w, float tol) {
    const auto v = e["embedding"].get<std::vector<float>>();
    ASSERT_EQ(v.size(), dim);
    EXPECT_LE(max_abs_diff(v.data(), w, dim), tol * max_abs(w, dim));
  };
  check(out[0], texts.data(), kTextEmbedRelTol);
  check(out[1], audio.data() + row_of("tone_440hz_3s.wav") * dim, kAudioEmbedRelTol);
  check(out[2], audio.data() + row_of("mix.flac") * dim, kAudioEmbedRelTol);
}

TEST(AudioCli, BadAudioFilesAreOneLineErrors) {
  for (const auto& f : kBadFiles) {
    const CliResult r =
        cli({"classify", "-q", "-m", clap_dir("clap-tiny-unfused"), "-l", "dog,rain", "-f", "json", audio_path(f)});
    EXPECT_EQ(r.code, 1) << f;
    EXPECT_NE(r.err.find(f), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("zeroshot: " + audio_path(f) + ": "), 0u) << r.err;
    EXPECT_EQ(lines(r.err), 2u) << r.err;  // the file's error + the "1 of 1" summary
    const CliResult e = cli({"embed", "-q", "-m", clap_dir("clap-tiny-fused"), "--audio", audio_path(f), "-f", "json"});
    EXPECT_EQ(e.code, 1) << f;
    EXPECT_EQ(lines(e.err), 1u) << e.err;
    EXPECT_NE(e.err.find(f), std::string::npos) << e.err;
  }
}

TEST(AudioCli, ModalityMismatchIsAOneLineError) {
  CliResult r = cli({"embed", "-q", "-m", clap_dir("clap-tiny-unfused"), "--image", image_path("chelsea.png")});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("audio model"), std::string::npos) << r.err;
  r = cli({"embed", "-q", "-m", clip_dir("clip-tiny-quickgelu"), "--audio", audio_path("tone_440hz_3s.wav")});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("image model"), std::string::npos) << r.err;
  r = cli({"classify", "-q", "-m", clap_dir("clap-tiny-unfused"), "-l", "dog,rain", image_path("chelsea.png")});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("chelsea.png"), std::string::npos) << r.err;
  r = cli({"classify", "-q", "-m", clip_dir("clip-tiny-quickgelu"), "-l", "dog,rain", audio_path("tone_440hz_3s.wav")});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("tone_440hz_3s.wav"), std::string::npos) << r.err;
}

// A copy of a CLAP fixture model (symlinks) with one file replaced.
struct ClapCopy {
  TempDir tmp;
  const fs::path dir = tmp.path;
  explicit ClapCopy(const std::string& model, const std::string& tag) : tmp("clap_" + tag) {
    for (const auto& e : fs::directory_iterator(clap_dir(model)))
      fs::create_symlink(e.path(), dir / e.path().filename());
  }
  void replace(const std::string& name, const std::string& bytes) {
    fs::remove(dir / name);
    std::ofstream(dir / name, std::ios::binary) << bytes;
  }
};

TEST(AudioCli, BrokenModelsAreOneLineErrors) {
  {
    ClapCopy m("clap-tiny-unfused", "truncated");
    const std::string full = read_file(clap_dir("clap-tiny-unfused") + "/model.safetensors");
    m.replace("model.safetensors", full.substr(0, full.size() / 2));
    const CliResult r =
        cli({"classify", "-q", "-m", m.dir.string(), "-l", "dog,rain", audio_path("tone_440hz_3s.wav")});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
    EXPECT_THROW((void)Model::load(m.dir.string()), Error);
  }
  {
    ClapCopy m("clap-tiny-fused", "type");
    io::Json j = io::load_json(clap_dir("clap-tiny-fused") + "/config.json");
    j["model_type"] = "wav2vec2";
    m.replace("config.json", j.dump(2));
    const CliResult r =
        cli({"classify", "-q", "-m", m.dir.string(), "-l", "dog,rain", audio_path("tone_440hz_3s.wav")});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("unsupported model_type \"wav2vec2\""), std::string::npos) << r.err;
  }
}

}  // namespace
