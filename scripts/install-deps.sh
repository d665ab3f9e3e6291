#!/usr/bin/env bash
# Installs the Debian packages zeroshot builds and tests with (run as root, or with sudo available).
set -euo pipefail
BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libjpeg62-turbo-dev libpng-dev libwebp-dev libgif-dev libexif-dev   # image decoding (libjpeg-turbo as Pillow)
  libtiff-dev                                                          # TIFF decoding (libtiff >= 4.5)
  libheif-dev libavif-dev                                              # HEIC (libheif), AVIF (libavif)
  libutf8proc-dev                                                      # Unicode classes + case mapping (tokenizer)
  nlohmann-json3-dev libcli11-dev                                      # JSON, command line
  libcurl4-openssl-dev libssl-dev                                      # Hugging Face hub downloads, sha256
  libopenblas-dev                                                      # f32 GEMM
  libavformat-dev libavcodec-dev libswresample-dev libavutil-dev libfftw3-dev  # audio: decoding, resampling (FFmpeg), STFT
  libtomlplusplus-dev                                                  # moderation policies (TOML)
  libsqlite3-dev libfaiss-dev zlib1g-dev                               # search index: store, ANN, checksums
  libcpp-httplib-dev                                                   # the HTTP server (zeroshot serve)
  libmicrohttpd-dev                                                    # the server's event-driven transport
  libminizip-dev                                                       # PyTorch checkpoints (torch.save zip archives)
  libsentencepiece-dev                                                 # SigLIP tokenizer (spiece.model)
  libgtest-dev                                                         # tests
  clang libclang-rt-14-dev libomp-dev                                  # clang build: TSan, libFuzzer (+ OpenMP for faiss)
  clang-format clang-tidy                                              # scripts/lint.sh
)
TEST_PACKAGES=(
  python3                                                              # the local hub test server
  python3-torch python3-numpy libopenblas0-pthread                     # the PyTorch peer (spot-check test)
  python3-pil python3-torchvision                                      # Pillow-mode images, open_clip's transform (pil_image_test)
  python3-venv                                                         # the reference venv (scripts/reference-venv.sh)
  nodejs chromium                                                      # the server's browser test (playwright-core)
  libheif-examples libavif-bin                                         # heif-enc/heif-convert, avifenc/avifdec (formats_test)
)
TEST_PACKAGES+=(python3-dev python3-venv python3-pil)                 # the Python package (scripts/test-python.sh)
TEST_PACKAGES+=(ffmpeg)                                              # audio tests: the pipeline's CLI makes M4A/Opus/MP3/video files
TEST_PACKAGES+=(python3-distributed python3-dask python3-faiss)      # zeroshot.inference on a loopback Dask cluster, its index
BUILD_PACKAGES+=(liblbfgs-dev)                                       # few-shot heads: L-BFGS for the logistic probes
TEST_PACKAGES+=(python3-sklearn)                                     # few-shot heads: LogisticRegression as the peer
# npm from Debian, unless the nodejs installed bundles it (NodeSource's conflicts with Debian's npm package).
if ! command -v npm >/dev/null; then TEST_PACKAGES+=(npm); fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}" >/dev/null
echo "install-deps: ok"
