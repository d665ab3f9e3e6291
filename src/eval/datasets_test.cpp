// The four data set layouts, class renaming, and the errors for bad layouts, on small generated folders.
#include "eval/datasets.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "classify/label_sets.h"
#include "support/temp_dir.h"
#include "zeroshot/error.h"

namespace fs = std::filesystem;
using namespace zeroshot::eval;

namespace {

using zeroshot::testing::TempDir;

std::vector<std::string> names(const Dataset& d) {
  std::vector<std::string> out;
  for (const auto& c : d.classes) out.push_back(c.names.at(0));
  return out;
}

std::vector<std::string> ids(const Dataset& d) {
  std::vector<std::string> out;
  for (const auto& c : d.classes) out.push_back(c.id);
  return out;
}

std::string file_of(const Sample& s) { return fs::path(s.path).filename().string(); }

// The error message of `f`, or "" when it does not throw.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const zeroshot::Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::vector<std::string>> given(std::initializer_list<const char*> l) {
  std::vector<std::vector<std::string>> out;
  for (const char* s : l) out.push_back({s});
  return out;
}

}  // namespace

TEST(Datasets, ImageFolderLikeTorchvision) {
  TempDir t;
  t.file("data/dog/sub/c.jpg", "x");
  t.file("data/cat/b.png", "x");
  t.file("data/cat/a.JPG", "x");
  t.file("data/cat/notes.txt", "x");
  t.file("data/golden_retriever/d.webp", "x");
  t.file("data/.thumbnails/x.jpg", "x");  // hidden folders are not classes
  t.file("data/top.jpg", "x");            // files beside the class folders are ignored
  EXPECT_EQ(detect_layout(t / "data"), Layout::Folder);
  const Dataset d = read_dataset(t / "data");
  EXPECT_EQ(d.layout, Layout::Folder);
  EXPECT_EQ(ids(d), (std::vector<std::string>{"cat", "dog", "golden_retriever"}));
  EXPECT_EQ(names(d), (std::vector<std::string>{"cat", "dog", "golden retriever"}));
  ASSERT_EQ(d.samples.size(), 4u);
  EXPECT_EQ(file_of(d.samples[0]), "a.JPG");
  EXPECT_EQ(file_of(d.samples[1]), "b.png");
  EXPECT_EQ(file_of(d.samples[2]), "c.jpg");
  EXPECT_EQ(d.samples[2].labels, std::vector<int>{1});
  EXPECT_EQ(d.samples[3].labels, std::vector<int>{2});
  EXPECT_FALSE(d.multi_label);
  EXPECT_EQ(d.modality, "image");
}

TEST(Datasets, EmptyClassFolderIsAnError) {
  TempDir t;
  t.file("data/cat/a.jpg", "x");
  fs::create_directories(t / "data/dog");
  t.file("data/dog/readme.txt", "x");
  const std::string e = error_of([&] { read_dataset(t / "data"); });
  EXPECT_NE(e.find("dog"), std::string::npos) << e;
  EXPECT_NE(e.find("no image files"), std::string::npos) << e;
}

TEST(Datasets, ClassMapRenamesIdFolders) {
  TempDir t;
  t.file("data/n02084071/a.jpg", "x");
  t.file("data/n02121808/b.jpg", "x");
  t.file("map.txt", "# wnid name\nn02121808\tdomestic cat\nn02084071\tdog\nn99999999\tunused\n");
  ReadOptions o;
  o.class_map = t / "map.txt";
  const Dataset d = read_dataset(t / "data", o);
  EXPECT_EQ(names(d), (std::vector<std::string>{"dog", "domestic cat"}));
  EXPECT_EQ(ids(d), (std::vector<std::string>{"n02084071", "n02121808"}));

  // ImageNet's JSON form {"0": ["n...", "name"]} and a plain {"id": "name"} object.
  t.file("map.json", R"({"0": ["n02084071", "hound"], "1": ["n02121808", "tabby"]})");
  o.class_map = t / "map.json";
  EXPECT_EQ(names(read_dataset(t / "data", o)), (std::vector<std::string>{"hound", "tabby"}));
  t.file("map2.json", R"({"n02084071": "puppy", "n02121808": "kitten"})");
  o.class_map = t / "map2.json";
  EXPECT_EQ(names(read_dataset(t / "data", o)), (std::vector<std::string>{"puppy", "kitten"}));

  t.file("short.txt", "n02084071 dog\n");
  o.class_map = t / "short.txt";
  const std::string e = error_of([&] { read_dataset(t / "data", o); });
  EXPECT_NE(e.find("n02121808"), std::string::npos) << e;
  EXPECT_NE(e.find("not in the class map"), std::string::npos) << e;
}

TEST(Datasets, GivenLabelsMatchByNameWithDistractors) {
  TempDir t;
  t.file("data/cat/a.jpg", "x");
  t.file("data/dog/b.jpg", "x");
  t.file("data/dog/c.jpg", "x");
  ReadOptions o;
  o.classes = given({"bird", "dog", "cat"});
  const Dataset d = read_dataset(t / "data", o);
  EXPECT_EQ(names(d), (std::vector<std::string>{"bird", "dog", "cat"}));
  EXPECT_EQ(d.samples[0].labels, std::vector<int>{2});
  EXPECT_EQ(d.samples[1].labels, std::vector<int>{1});
  EXPECT_EQ(d.classes[2].id, "cat");
}

TEST(Datasets, GivenLabelsRenamePositionallyWhenNamesDoNotMatch) {
  TempDir t;
  t.file("data/c0/a.jpg", "x");
  t.file("data/c1/b.jpg", "x");
  ReadOptions o;
  o.classes = {{"kitten", "cat"}, {"puppy"}};  // synonyms kept
  const Dataset d = read_dataset(t / "data", o);
  EXPECT_EQ(names(d), (std::vector<std::string>{"kitten", "puppy"}));
  EXPECT_EQ(d.classes[0].names, (std::vector<std::string>{"kitten", "cat"}));
  EXPECT_EQ(d.classes[0].id, "c0");
  o.classes = given({"a", "b", "c"});
  const std::string e = error_of([&] { read_dataset(t / "data", o); });
  EXPECT_NE(e.find("2 classes and 3 labels"), std::string::npos) << e;
}

TEST(Datasets, CsvRowsHeaderQuotesAndMultiLabel) {
  TempDir t;
  t.file("imgs/a.jpg", "x");
  t.file("imgs/b, with comma.png", "x");
  t.file("imgs/c.jpg", "x");
  const std::string abs = t.file("elsewhere/d.jpg", "x");
  t.file("labels.csv",
         "path,label\n# a comment\nimgs/a.jpg,dog\n\"imgs/b, with comma.png\",cat\nimgs/c.jpg, cat , dog\n" + abs +
             ",bird\r\n");
  const Dataset d = read_dataset(t / "labels.csv");
  EXPECT_EQ(d.layout, Layout::Csv);
  EXPECT_EQ(names(d), (std::vector<std::string>{"bird", "cat", "dog"}));
  ASSERT_EQ(d.samples.size(), 4u);
  EXPECT_EQ(d.samples[0].path, t / "imgs/a.jpg");
  EXPECT_EQ(file_of(d.samples[1]), "b, with comma.png");
  EXPECT_EQ(d.samples[2].labels, (std::vector<int>{1, 2}));
  EXPECT_EQ(d.samples[3].path, abs);
  EXPECT_TRUE(d.multi_label);
}

TEST(Datasets, TsvAndNumericLabels) {
  TempDir t;
  t.file("a.jpg", "x");
  t.file("b.jpg", "x");
  t.file("c.jpg", "x");
  t.file("l.tsv", "a.jpg\t10\nb.jpg\t2\nc.jpg\t2\n");
  const Dataset d = read_dataset(t / "l.tsv");
  EXPECT_EQ(ids(d), (std::vector<std::string>{"2", "10"}));  // numbers sort as numbers
  EXPECT_EQ(d.samples[0].labels, std::vector<int>{1});
  EXPECT_FALSE(d.multi_label);

  // With given labels, numbers are indices into them.
  t.file("i.csv", "a.jpg,1\nb.jpg,cat\n");
  ReadOptions o;
  o.classes = given({"cat", "dog"});
  const Dataset g = read_dataset(t / "i.csv", o);
  EXPECT_EQ(g.samples[0].labels, std::vector<int>{1});
  EXPECT_EQ(g.samples[1].labels, std::vector<int>{0});
}

TEST(Datasets, CsvErrorsNameTheRow) {
  TempDir t;
  t.file("a.jpg", "x");
  t.file("unknown.csv", "a.jpg,cat\na.jpg,zebra\n");
  ReadOptions o;
  o.classes = given({"cat", "dog"});
  std::string e = error_of([&] { read_dataset(t / "unknown.csv", o); });
  EXPECT_NE(e.find("unknown.csv:2"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown label \"zebra\""), std::string::npos) << e;

  t.file("missing.csv", "a.jpg,cat\nnope.jpg,dog\n");
  e = error_of([&] { read_dataset(t / "missing.csv"); });
  EXPECT_NE(e.find("missing.csv:2"), std::string::npos) << e;
  EXPECT_NE(e.find("nope.jpg: no such file"), std::string::npos) << e;

  t.file("nolabel.csv", "a.jpg\n");
  e = error_of([&] { read_dataset(t / "nolabel.csv"); });
  EXPECT_NE(e.find("nolabel.csv:1: no label"), std::string::npos) << e;

  t.file("quote.csv", "\"a.jpg,cat\n");
  e = error_of([&] { read_dataset(t / "quote.csv"); });
  EXPECT_NE(e.find("unterminated"), std::string::npos) << e;

  t.file("empty.csv", "path,label\n");
  e = error_of([&] { read_dataset(t / "empty.csv"); });
  EXPECT_NE(e.find("no rows"), std::string::npos) << e;
}

TEST(Datasets, FilenameLayout) {
  TempDir t;
  t.file("d/002_cat.jpg", "x");
  t.file("d/001_cat.jpg", "x");
  t.file("d/003_dog_face.png", "x");
  t.file("d/README.md", "x");
  EXPECT_EQ(detect_layout(t / "d"), Layout::Filename);
  const Dataset d = read_dataset(t / "d");
  EXPECT_EQ(d.layout, Layout::Filename);
  EXPECT_EQ(names(d), (std::vector<std::string>{"cat", "dog face"}));  // first appearance among sorted names
  ASSERT_EQ(d.samples.size(), 3u);
  EXPECT_EQ(file_of(d.samples[0]), "001_cat.jpg");
  EXPECT_EQ(d.samples[2].labels, std::vector<int>{1});

  t.file("d/nounderscore.jpg", "x");
  const std::string e = error_of([&] { read_dataset(t / "d"); });
  EXPECT_NE(e.find("nounderscore.jpg"), std::string::npos) << e;
  EXPECT_NE(e.find("<id>_<class>"), std::string::npos) << e;
}

TEST(Datasets, FilenameWithWordNetIdsKeepsSameNamedClassesApart) {
  TempDir t;
  t.file("d/n03126707_crane.JPEG", "x");
  t.file("d/n02012849_crane.JPEG", "x");
  t.file("d/n01440764_tench.JPEG", "x");
  const Dataset d = read_dataset(t / "d");
  EXPECT_EQ(ids(d), (std::vector<std::string>{"n01440764", "n02012849", "n03126707"}));
  EXPECT_EQ(names(d), (std::vector<std::string>{"tench", "crane", "crane"}));
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("same name \"crane\""), std::string::npos);
}

TEST(Datasets, ImagenetSamplesWithBuiltInNames) {
  const std::string dir = std::string(ZEROSHOT_SHARED) + "/datasets/imagenet-samples";
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " not present";
  const Dataset raw = read_dataset(dir);
  EXPECT_EQ(raw.layout, Layout::Filename);
  ASSERT_EQ(raw.classes.size(), 1000u);
  ASSERT_EQ(raw.samples.size(), 1000u);
  EXPECT_EQ(raw.classes[0].id, "n01440764");
  EXPECT_EQ(raw.classes[0].names[0], "tench");
  EXPECT_EQ(raw.classes[999].id, "n15075141");
  for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(raw.samples[i].labels, std::vector<int>{static_cast<int>(i)});

  ReadOptions o;
  o.classes = zeroshot::classify::find_label_set("imagenet")->classes;
  const Dataset d = read_dataset(dir, o);
  ASSERT_EQ(d.classes.size(), 1000u);
  for (size_t i = 0; i < 1000; ++i) EXPECT_EQ(d.classes[i].names, o.classes[i]);
  EXPECT_EQ(d.classes[999].names[0], "toilet paper");
  EXPECT_EQ(d.classes[999].id, "n15075141");
  // CLIP's list names two classes "missile" and two "sunglasses" (as in OpenAI's notebook): said, not hidden.
  ASSERT_EQ(d.warnings.size(), 2u);
  EXPECT_NE(d.warnings[0].find("\"missile\""), std::string::npos) << d.warnings[0];
  EXPECT_NE(d.warnings[1].find("\"sunglasses\""), std::string::npos) << d.warnings[1];
}

TEST(Datasets, Esc50Layout) {
  TempDir t;
  t.file("ESC-50-master/meta/esc50.csv",
         "filename,fold,target,category,esc10,src_file,take\n"
         "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
         "1-100038-A-14.wav,1,2,chirping_birds,False,100038,A\n"
         "2-100648-A-1.wav,2,1,rooster,False,100648,A\n"
         "2-100648-B-0.wav,2,0,dog,True,100648,B\n");
  for (const char* f : {"1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-1.wav", "2-100648-B-0.wav"})
    t.file(std::string("ESC-50-master/audio/") + f, "RIFF");
  const std::string root = t / "ESC-50-master";
  EXPECT_EQ(detect_layout(root), Layout::Esc50);
  const Dataset d = read_dataset(root);
  EXPECT_EQ(d.modality, "audio");
  EXPECT_EQ(names(d), (std::vector<std::string>{"dog", "rooster", "chirping birds"}));
  EXPECT_EQ(ids(d), (std::vector<std::string>{"0", "1", "2"}));
  ASSERT_EQ(d.samples.size(), 4u);
  EXPECT_EQ(d.samples[1].labels, std::vector<int>{2});
  EXPECT_EQ(d.samples[2].fold, 2);
  EXPECT_EQ(d.samples[0].path, t / "ESC-50-master/audio/1-100032-A-0.wav");

  ReadOptions o;
  o.fold = 2;
  const Dataset f2 = read_dataset(root, o);
  ASSERT_EQ(f2.samples.size(), 2u);
  EXPECT_EQ(f2.classes.size(), 3u);  // classes come from every fold
  o.fold = 3;
  EXPECT_NE(error_of([&] { read_dataset(root, o); }).find("no rows in fold 3 (folds: 1,2)"), std::string::npos);

  // The built-in esc50 names contain these three: the class list becomes all 50 (the rest are distractors).
  ReadOptions b;
  b.classes = zeroshot::classify::find_label_set("esc50")->classes;
  const Dataset full = read_dataset(root, b);
  ASSERT_EQ(full.classes.size(), 50u);
  EXPECT_EQ(full.classes[full.samples[1].labels[0]].names[0], "chirping birds");
  EXPECT_EQ(full.samples[1].labels[0], 14);  // ESC-50 target of chirping_birds
}

TEST(Datasets, Esc50Errors) {
  TempDir t;
  t.file("e/meta/esc50.csv", "filename,fold,target,category\na.wav,1,0,dog\nb.wav,1,0,cat\n");
  t.file("e/audio/a.wav", "x");
  t.file("e/audio/b.wav", "x");
  std::string e = error_of([&] { read_dataset(t / "e"); });
  EXPECT_NE(e.find("esc50.csv:3"), std::string::npos) << e;
  EXPECT_NE(e.find("target 0 is \"cat\" here but \"dog\" before"), std::string::npos) << e;

  t.file("e/meta/esc50.csv", "filename,fold,target,category\na.wav,1,0,dog\nmissing.wav,1,1,cat\n");
  e = error_of([&] { read_dataset(t / "e"); });
  EXPECT_NE(e.find("missing.wav: no such file"), std::string::npos) << e;

  t.file("e/meta/esc50.csv", "filename,fold,target,category\na.wav,1,0,dog\nb.wav,1,2,cat\n");
  e = error_of([&] { read_dataset(t / "e"); });
  EXPECT_NE(e.find("no row has target 1"), std::string::npos) << e;

  t.file("e/meta/esc50.csv", "filename,target,category\na.wav,0,dog\n");
  e = error_of([&] { read_dataset(t / "e"); });
  EXPECT_NE(e.find("no \"fold\" column"), std::string::npos) << e;
}

TEST(Datasets, DetectionAndOptionErrors) {
  TempDir t;
  EXPECT_NE(error_of([&] { read_dataset(t / "nope"); }).find("no such file or directory"), std::string::npos);
  fs::create_directories(t / "empty");
  EXPECT_NE(error_of([&] { read_dataset(t / "empty"); }).find("neither class sub-folders nor image files"),
            std::string::npos);
  t.file("x.json", "{}");
  EXPECT_NE(error_of([&] { read_dataset(t / "x.json"); }).find("not a .csv"), std::string::npos);
  t.file("d/cat/a.jpg", "x");
  ReadOptions o;
  o.fold = 1;
  EXPECT_NE(error_of([&] { read_dataset(t / "d", o); }).find("only defined for the ESC-50 layout"), std::string::npos);
  EXPECT_EQ(parse_layout("ImageFolder"), Layout::Folder);
  EXPECT_THROW(parse_layout("parquet"), zeroshot::Error);
  // A layout forced on the wrong shape of data still gives a clear error.
  o = {};
  o.layout = Layout::Filename;
  EXPECT_NE(error_of([&] { read_dataset(t / "d", o); }).find("no image files"), std::string::npos);
}
