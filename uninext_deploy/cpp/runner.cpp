// Run, verify and time this bundle's model on the device from C++: the verbs of run.py, on the same files.
//
//     runner IMAGE [IMAGE ...]   top-5 classes of each image (a classifier), or each feature map's shape and
//                                statistics (a feature model; --save DIR writes them as DIR/IMAGE.OUTPUT.npy)
//     runner --verify            checksums, then the golden inputs against PyTorch's outputs
//     runner --bench             latency percentiles and throughput
//
// Every file's sha256 is checked before anything is loaded, and with --public-key PEM the manifest's Ed25519
// signature before that (OpenSSL, as signature.py does with cryptography). Exit codes: 0 done, 1 verification failed,
// 2 a problem to fix (one line on stderr).
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "image.hpp"
#include "runner.hpp"

namespace runner {
namespace {

constexpr int SCHEMA_VERSION = 3;  // integrity.SCHEMA_VERSION
const char* MANIFEST = "manifest.json";

struct Args {
    std::vector<std::string> images;
    std::string bundle, save, public_key;
    bool verify = false, bench = false, as_json = false;
    int threads = 0, iters = 100, warmup = 10;
};

const char* USAGE =
    "usage: runner [IMAGE ...] [--verify] [--bench] [--save DIR] [--threads N] [--iters N] [--warmup N] [--json] "
    "[--public-key PEM] [--bundle DIR]";

int number(const std::string& flag, const std::string& text, int least) {
    size_t used = 0;
    int value = 0;
    try {
        value = std::stoi(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || value < least)
        throw Problem(flag + " must be a whole number of at least " + std::to_string(least) + ", got " + text);
    return value;
}

Args parse(int argc, char** argv) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw Problem(a + " needs a value; " + USAGE);
            return argv[++i];
        };
        if (a == "--verify") args.verify = true;
        else if (a == "--bench") args.bench = true;
        else if (a == "--json") args.as_json = true;
        else if (a == "--save") args.save = value();
        else if (a == "--bundle") args.bundle = value();
        else if (a == "--public-key") args.public_key = value();
        else if (a == "--threads") args.threads = number(a, value(), 1);
        else if (a == "--iters") args.iters = number(a, value(), 1);
        else if (a == "--warmup") args.warmup = number(a, value(), 0);
        else if (a.rfind("--", 0) == 0) throw Problem("unknown option " + a + "; " + USAGE);
        else args.images.push_back(a);
    }
    if (args.images.empty() && !args.verify && !args.bench) throw Problem(std::string("pass image files, --verify or --bench; ") + USAGE);
    return args;
}

std::string parent(const std::string& path) {
    auto slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

bool is_file(const std::string& path) { return std::ifstream(path).good(); }

// The bundle: --bundle, else the first folder above this program holding manifest.json (cpp/build/runner).
std::string find_bundle(const std::string& given) {
    if (!given.empty()) return given;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        for (std::string dir = parent(self); dir != "/" && dir != "."; dir = parent(dir))
            if (is_file(dir + "/" + MANIFEST)) return dir;
    }
    return ".";
}

std::string sha256(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    std::vector<char> chunk(1 << 20);
    while (in) {
        in.read(chunk.data(), chunk.size());
        EVP_DigestUpdate(ctx.get(), chunk.data(), static_cast<size_t>(in.gcount()));
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx.get(), digest, &size);
    static const char* hex = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < size; ++i) text += {hex[digest[i] >> 4], hex[digest[i] & 15]};
    return text;
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string fingerprint(EVP_PKEY* key) {
    unsigned char raw[32];
    size_t size = sizeof raw;
    EVP_PKEY_get_raw_public_key(key, raw, &size);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(raw, size, digest, &length, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < 8; ++i) text += {hex[digest[i] >> 4], hex[digest[i] & 15]};
    return text;
}

// signature.check: manifest.json must carry a valid Ed25519 signature (manifest.json.sig, raw 64 bytes) by the
// key in `public_key` (PEM). The fingerprint of the key.
std::string check_signature(const std::string& folder, const std::string& public_key) {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(public_key.c_str(), "r"), std::fclose);
    if (!file) throw Problem("cannot read the public key " + public_key + "; pass the PEM file `uninext-deploy keygen` wrote");
    std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(PEM_read_PUBKEY(file.get(), nullptr, nullptr, nullptr),
                                                      EVP_PKEY_free);
    if (!key) throw Problem(public_key + " is not a PEM public key; pass the signing.pub.pem file `uninext-deploy keygen` wrote");
    if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519)
        throw Problem(public_key + " is not an Ed25519 key, bundles are signed with Ed25519; make a key pair with "
                      "`uninext-deploy keygen`");
    std::string signature_path = folder + "/manifest.json.sig";
    if (!is_file(signature_path))
        throw Problem(folder + " is not signed (no manifest.json.sig) but a public key was given; use a bundle made with "
                      "`bundle --sign-key`, or drop --public-key to accept unsigned bundles");
    std::string signature = read_bytes(signature_path), manifest = read_bytes(folder + "/" + MANIFEST);
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    bool valid = EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
                 EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                                  reinterpret_cast<const unsigned char*>(manifest.data()), manifest.size()) == 1;
    if (!valid)
        throw Problem(std::string(MANIFEST) + " is not signed by the key " + public_key + " (fingerprint " +
                      fingerprint(key.get()) + "): the manifest was changed or signed with another key; do not run it");
    return fingerprint(key.get());
}

json read_manifest(const std::string& folder) {
    std::string path = folder + "/" + MANIFEST;
    std::ifstream in(path);
    if (!in) throw Problem(folder + " has no " + MANIFEST + "; pass the folder written by `uninext-deploy bundle`");
    json manifest = json::parse(in, nullptr, false);
    if (manifest.is_discarded() || !manifest.is_object())
        throw Problem(path + " is not valid JSON (corrupted copy?); re-copy the bundle");
    if (manifest.value("schema", 0) != SCHEMA_VERSION)
        throw Problem(path + " has schema " + manifest.value("schema", json()).dump() + ", this runner reads schema " +
                      std::to_string(SCHEMA_VERSION) + "; use the runner that came with the bundle");
    return manifest;
}

namespace fs = std::filesystem;

// integrity.listed_path: a manifest entry must name a plain relative path inside the bundle.
std::string listed_path(const std::string& folder, const std::string& name) {
    fs::path path(name);
    bool climbs = std::any_of(path.begin(), path.end(), [](const fs::path& part) { return part == ".."; });
    if (name.empty() || name[0] == '/' || name.find('\\') != std::string::npos || climbs ||
        path.begin()->string().find(':') != std::string::npos)
        throw Problem(std::string(MANIFEST) + " lists '" + name + "', which is not a file inside the bundle; this is not a "
                      "bundle written by `uninext-deploy bundle`");
    return folder + "/" + name;
}

// integrity.check_files: the first missing, truncated, modified or not plain listed file, with the same words.
void check_files(const std::string& folder, const json& manifest) {
    for (const auto& [name, entry] : manifest["files"].items()) {
        std::string path = listed_path(folder, name);
        std::error_code error;
        fs::file_status status = fs::symlink_status(path, error);
        if (error || !fs::exists(status))
            throw Problem(name + " is missing from " + folder + " (listed in manifest.json); re-copy the whole bundle");
        if (!fs::is_regular_file(status))
            throw Problem(name + " is " + (fs::is_symlink(status) ? "a link" : fs::is_directory(status) ? "a folder" :
                          "a special file") + ", not a plain file; re-copy the bundle without links (cp -rL)");
        std::ifstream in(path, std::ios::binary | std::ios::ate);
        long long size = in.tellg(), expected = entry["bytes"];
        if (size != expected)
            throw Problem(name + " has " + std::to_string(size) + " bytes, manifest.json says " + std::to_string(expected) +
                          " (truncated or modified); re-copy the bundle");
        if (sha256(path) != entry["sha256"].get<std::string>())
            throw Problem(name + " does not match its sha256 in manifest.json (modified or corrupted); re-copy the "
                          "bundle or rebuild it with `uninext-deploy bundle`");
    }
}

// integrity.check_tree: no link that leads outside the folder, nothing but plain files, folders and links.
void check_tree(const std::string& folder) {
    fs::path root = fs::canonical(folder);
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        fs::file_status status = it->symlink_status();
        std::string relative = it->path().lexically_relative(root).string();
        if (fs::is_symlink(status)) {
            fs::path target = fs::weakly_canonical(it->path());
            auto [end, _] = std::mismatch(root.begin(), root.end(), target.begin(), target.end());
            if (end != root.end())
                throw Problem(relative + " is a link to " + fs::read_symlink(it->path()).string() + ", outside the bundle; "
                              "remove it or re-copy the bundle without links (cp -rL)");
        } else if (!fs::is_regular_file(status) && !fs::is_directory(status)) {
            throw Problem(relative + " is a device, FIFO or other special file, not part of a bundle; remove it");
        }
    }
}

// A shape as Python prints a list, "[4, 3, 64, 64]", so both runners' messages read the same.
std::string list_text(const json& shape) {
    if (!shape.is_array()) return shape.dump();
    std::string text;
    for (const auto& d : shape) text += (text.empty() ? "" : ", ") + d.dump();
    return "[" + text + "]";
}

std::string dims_text(const json& shape) {
    std::string text;
    for (const auto& d : shape) text += (text.empty() ? "" : "x") + (d.is_string() ? d.get<std::string>() : d.dump());
    return text;
}

// integrity.check_model_io: the model's inputs and outputs must be the ones the manifest describes.
void check_model_io(const json& manifest, const Model& model) {
    for (const auto& [kind, found, described] : {std::tuple{std::string("input"), model.inputs, json::array({manifest["input"]})},
                                                 std::tuple{std::string("output"), model.outputs, manifest["outputs"]}}) {
        std::string have, want;
        for (const auto& e : found) have += (have.empty() ? "" : ", ") + e["name"].get<std::string>();
        for (const auto& e : described) want += (want.empty() ? "" : ", ") + e["name"].get<std::string>();
        if (have != want)
            throw Problem("the model's " + kind + "s are " + (have.empty() ? "none" : have) + ", manifest.json says " + want +
                          ": the model file is not the one this manifest describes; rebuild the bundle with "
                          "`uninext-deploy bundle`");
        for (size_t i = 0; i < found.size(); ++i)
            if (found[i]["shape"] != described[i]["shape"] || found[i]["dtype"] != described[i]["dtype"])
                throw Problem("the model's " + kind + " " + described[i]["name"].get<std::string>() + " is " +
                              found[i]["dtype"].get<std::string>() + " " + dims_text(found[i]["shape"]) +
                              ", manifest.json says " + described[i]["dtype"].get<std::string>() + " " +
                              dims_text(described[i]["shape"]) + ": the model file is not the one this manifest "
                              "describes; rebuild the bundle with `uninext-deploy bundle`");
    }
}

std::string file_with_role(const std::string& folder, const json& manifest, const std::string& role) {
    for (const auto& [name, entry] : manifest["files"].items())
        if (entry["role"] == role) return folder + "/" + name;
    throw Problem(folder + " lists no " + role + " file in its manifest; re-export it");
}

std::vector<int64_t> shape_of(const json& shape) { return shape.get<std::vector<int64_t>>(); }

// compare.read_golden: a golden tensor is raw little-endian float32 of the model's shape (samples first), finite,
// refused with the same words otherwise.
Tensor read_raw(const std::string& folder, const json& item, const std::string& name, const json& described,
                int64_t samples) {
    std::string file = item.value("file", "");
    if (item.value("dtype", "") != "float32")
        throw Problem("golden " + file + " is " + (item["dtype"].is_string() ? item["dtype"].get<std::string>() :
                      item["dtype"].dump()) + ", not float32; re-bundle with "
                      "`uninext-deploy bundle`");
    const json& shape = item.value("shape", json());
    bool plain = shape.is_array() && !shape.empty() &&
                 std::all_of(shape.begin(), shape.end(), [](const json& d) { return d.is_number_integer() && d > 0; });
    if (!plain)
        throw Problem("golden " + file + " has shape " + list_text(shape) + ", not a list of positive sizes; re-bundle with "
                      "`uninext-deploy bundle`");
    json rest(shape.begin() + 1, shape.end()), model_rest(described["shape"].begin() + 1, described["shape"].end());
    if (rest != model_rest || (samples > 0 && shape[0] != samples))
        throw Problem("golden " + file + " has shape " + list_text(shape) + ", the model's " + name + " is not; re-bundle "
                      "with `uninext-deploy bundle`");
    Tensor t{shape_of(shape), {}};
    size_t count = std::accumulate(t.shape.begin(), t.shape.end(), size_t{1}, std::multiplies<size_t>());
    std::string path = folder + "/" + file;
    auto size = fs::file_size(path);
    if (size != count * sizeof(float))
        throw Problem("golden " + file + " has " + std::to_string(size) + " bytes, its shape " + list_text(shape) + " needs " +
                      std::to_string(count * sizeof(float)) + "; re-bundle with `uninext-deploy bundle`");
    t.data.resize(count);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(count * sizeof(float)));
    if (!std::all_of(t.data.begin(), t.data.end(), [](float v) { return std::isfinite(v); }))
        throw Problem("golden " + file + " holds NaN or Inf values; re-bundle with `uninext-deploy bundle`");
    return t;
}

// compare.run_batched: every sample through the model at its fixed batch, the last batch filled by repeating
// the last sample.
Outputs run_batched(Model& model, const Tensor& x, int64_t batch) {
    int64_t samples = x.shape[0];
    size_t per = x.sample_size();
    Outputs all;
    for (int64_t start = 0; start < samples; start += batch) {
        Tensor input{x.shape, std::vector<float>(per * batch)};
        input.shape[0] = batch;
        for (int64_t i = 0; i < batch; ++i) {
            int64_t from = std::min(start + i, samples - 1);
            std::copy_n(x.data.begin() + from * per, per, input.data.begin() + i * per);
        }
        Outputs ys = model.run(input);
        if (all.empty())
            for (const auto& [name, y] : ys) {
                Tensor t{y.shape, {}};
                t.shape[0] = samples;
                all.emplace_back(name, t);
            }
        for (size_t o = 0; o < ys.size(); ++o) {
            size_t n = ys[o].second.sample_size() * std::min<int64_t>(batch, samples - start);
            all[o].second.data.insert(all[o].second.data.end(), ys[o].second.data.begin(), ys[o].second.data.begin() + n);
        }
    }
    return all;
}

// numpy.percentile with its default linear interpolation.
double percentile(std::vector<double> values, double q) {
    std::sort(values.begin(), values.end());
    double rank = q / 100.0 * (values.size() - 1);
    size_t low = static_cast<size_t>(std::floor(rank)), high = std::min(low + 1, values.size() - 1);
    return values[low] + (values[high] - values[low]) * (rank - low);
}

std::vector<size_t> top_k(const float* row, size_t n, size_t k) {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return row[a] > row[b]; });
    order.resize(std::min(k, n));
    return order;
}

// compare.compare_arrays: the metrics of one output against its reference (top-k only for logits).
json metrics_of(const std::string& name, const Tensor& ref, const Tensor& out) {
    size_t samples = ref.shape[0], per = ref.sample_size();
    if (out.data.size() != ref.data.size())
        throw Problem("output " + name + " has " + std::to_string(out.data.size()) + " values, the golden one " +
                      std::to_string(ref.data.size()) + "; re-bundle");
    bool logits = name == "logits";
    json m = {{"samples", samples}, {"output", name}, {"outputs", json::object()}, {"top1", nullptr},
              {"top5", nullptr}, {"top1_decisive", nullptr}};
    for (float v : out.data)
        if (!std::isfinite(v)) {
            double inf = std::numeric_limits<double>::infinity();
            m.update({{"max_abs", inf}, {"mean_abs", inf}, {"rel_max_abs", inf}, {"cosine", -1.0}, {"sqnr_db", -inf}});
            if (logits) m.update({{"top1", 0.0}, {"top5", 0.0}, {"top1_decisive", 0.0}});
            return m;
        }
    double max_abs = 0, sum_abs = 0, ref_max = 0, signal = 0, noise = 0, worst_cosine = 2;
    std::vector<double> errors(ref.data.size());
    for (size_t s = 0; s < samples; ++s) {
        double dot = 0, rr = 0, oo = 0;
        for (size_t i = s * per; i < (s + 1) * per; ++i) {
            double r = ref.data[i], o = out.data[i], e = std::fabs(o - r);
            errors[i] = e;
            max_abs = std::max(max_abs, e);
            sum_abs += e;
            ref_max = std::max(ref_max, std::fabs(r));
            signal += r * r;
            noise += e * e;
            dot += r * o;
            rr += r * r;
            oo += o * o;
        }
        double norms = std::sqrt(rr) * std::sqrt(oo);
        worst_cosine = std::min(worst_cosine, norms > 0 ? dot / std::max(norms, 1e-300) : 0.0);
    }
    m.update({{"max_abs", max_abs}, {"mean_abs", sum_abs / ref.data.size()},
              {"rel_max_abs", max_abs / std::max(ref_max, 1e-300)}, {"cosine", worst_cosine},
              {"sqnr_db", noise == 0 ? json(nullptr) : json(10 * std::log10(signal / noise))}});
    if (logits) {
        double typical = percentile(errors, 99);
        size_t agree = 0, decisive = 0, decisive_agree = 0;
        double overlap = 0;
        for (size_t s = 0; s < samples; ++s) {
            const float* r = &ref.data[s * per];
            const float* o = &out.data[s * per];
            auto top_ref = top_k(r, per, 5), top_out = top_k(o, per, 5);
            std::set<size_t> ours(top_out.begin(), top_out.end());
            overlap += static_cast<double>(std::count_if(top_ref.begin(), top_ref.end(),
                                                         [&](size_t c) { return ours.count(c); })) / top_ref.size();
            bool same = top_ref[0] == top_out[0];
            agree += same;
            double margin = per > 1 ? static_cast<double>(r[top_ref[0]]) - r[top_k(r, per, 2)[1]]
                                    : std::numeric_limits<double>::infinity();
            if (margin > 2 * typical) {
                ++decisive;
                decisive_agree += same;
            }
        }
        m.update({{"top1", static_cast<double>(agree) / samples}, {"top5", overlap / samples},
                  {"top1_decisive", decisive ? static_cast<double>(decisive_agree) / decisive : 1.0}});
    }
    return m;
}

// compare.compare + compare.failures: the worst output's metrics (every output's in "outputs") and the misses.
json verify(Model& model, const std::string& folder, const json& manifest) {
    const json& golden = manifest["bundle"]["golden"];
    std::set<std::string> listed_names, described_names;  // json objects are sorted by key: compare as sets
    for (const auto& [name, _] : golden["outputs"].items()) listed_names.insert(name);
    for (const auto& o : manifest["outputs"]) described_names.insert(o["name"].get<std::string>());
    std::string listed, described;
    for (const auto& name : listed_names) listed += (listed.empty() ? "" : ", ") + name;
    for (const auto& name : described_names) described += (described.empty() ? "" : ", ") + name;
    if (listed != described)
        throw Problem("golden outputs " + listed + " are not the model's " + described + "; re-bundle with "
                      "`uninext-deploy bundle`");
    Tensor x = read_raw(folder, golden["inputs"], "inputs", manifest["input"], 0);
    std::vector<Tensor> references;
    for (const auto& o : manifest["outputs"])
        references.push_back(read_raw(folder, golden["outputs"][o["name"].get<std::string>()],
                                      "outputs." + o["name"].get<std::string>(), o, x.shape[0]));
    Outputs ys = run_batched(model, x, manifest["input"]["shape"][0].get<int64_t>());
    std::vector<json> each;
    for (size_t i = 0; i < ys.size(); ++i) each.push_back(metrics_of(ys[i].first, references[i], ys[i].second));
    auto worst = std::min_element(each.begin(), each.end(), [](const json& a, const json& b) {
        double ca = a["cosine"], cb = b["cosine"], ra = a["rel_max_abs"], rb = b["rel_max_abs"];
        return ca < cb || (ca == cb && ra > rb);
    });
    json metrics = *worst;
    if (each.size() > 1)
        for (const auto& m : each) metrics["outputs"][m["output"].get<std::string>()] = m;
    json failed = json::array();
    for (const auto& m : each)
        for (const auto& [key, bound] : manifest["bundle"]["tolerance"].items()) {
            if (!m.contains(key)) throw Problem("the bundle's tolerance names " + key + ", which this runner does not measure");
            if (m[key].is_null()) continue;
            double value = m[key], limit = bound[0];
            std::string kind = bound[1];
            if ((kind == "min" && !(value >= limit)) || (kind == "max" && !(value <= limit)))
                failed.push_back({{"metric", key}, {"value", value}, {"bound", limit}, {"kind", kind}, {"inputs", "golden"},
                                  {"output", each.size() > 1 ? m["output"] : json("")}});
        }
    return {{"passed", failed.empty()}, {"failed", failed}, {"metrics", metrics}, {"tolerance", manifest["bundle"]["tolerance"]}};
}

Tensor images_batch(const std::vector<std::string>& images, const json& manifest) {
    Tensor x{shape_of(manifest["input"]["shape"]), {}};
    x.shape[0] = static_cast<int64_t>(images.size());
    for (const auto& image : images) {
        auto one = preprocess(load_rgb(image), manifest["preprocessing"]);
        x.data.insert(x.data.end(), one.begin(), one.end());
    }
    return x;
}

std::vector<std::string> read_labels(const std::string& folder, const json& manifest) {
    std::vector<std::string> labels;
    if (!manifest["bundle"].contains("labels") || manifest["bundle"]["labels"].is_null()) return labels;
    std::ifstream in(folder + "/" + manifest["bundle"]["labels"].get<std::string>());
    for (std::string line; std::getline(in, line);) labels.push_back(line);
    return labels;
}

// runtimes.int8_dot_saturates: an x86 CPU without VNNI adds pairs of INT8 products into int16 (vpmaddubsw), which
// saturates on 8-bit weights; VNNI and ARM's dot products accumulate in int32. From CPUID, as the kernels see it.
bool int8_dot_saturates() {
#if defined(__x86_64__)
    __builtin_cpu_init();
    // AVX2 without VNNI: the pairwise int16 kernels (an SSE4-only CPU has none and stays exact, runtimes.py)
    return __builtin_cpu_supports("avx2") && !__builtin_cpu_supports("avx512vnni") && !__builtin_cpu_supports("avxvnni");
#else
    return false;
#endif
}

// run.py's saturates(): an INT8 model with 8-bit weights on a CPU whose INT8 kernels saturate on them.
bool saturates(const json& manifest, const json& info) {
    const json& graph = manifest["precision_graph"];
    return manifest["precision"] == "int8" && graph.value("weight_bits", 8) == 8 && info.value("device", "") == "CPU" &&
           int8_dot_saturates();
}

std::string stem(const std::string& path) {
    std::string name = path.substr(path.find_last_of('/') + 1);
    auto dot = name.find_last_of('.');
    return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

// One array as a .npy file (format 1.0: magic, header dict, raw little-endian float32), as numpy.save writes it.
void save_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data, size_t count) {
    std::string dims;
    for (auto d : shape) dims += std::to_string(d) + ", ";
    if (shape.size() > 1) dims.erase(dims.size() - 2);
    else if (shape.size() == 1) dims.pop_back();
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    header.append(63 - (10 + header.size()) % 64, ' ');
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    uint16_t length = static_cast<uint16_t>(header.size());
    out.write(reinterpret_cast<const char*>(&length), 2);
    out << header;
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(float)));
    if (!out) throw Problem("cannot write --save " + path + "; pass a writable folder");
}

json infer(Model& model, const std::string& folder, const json& manifest, const Args& args) {
    Outputs ys = run_batched(model, images_batch(args.images, manifest), manifest["input"]["shape"][0].get<int64_t>());
    json report = json::object();
    bool classifier = ys.size() == 1 && ys[0].first == "logits";
    std::vector<std::string> labels = read_labels(folder, manifest);
    json items = json::array(), saved = json::array();
    for (size_t i = 0; i < args.images.size(); ++i) {
        json item = {{"image", args.images[i]}};
        if (classifier) {
            const Tensor& y = ys[0].second;
            size_t n = y.sample_size();
            const float* row = &y.data[i * n];
            double peak = *std::max_element(row, row + n), total = 0;
            for (size_t c = 0; c < n; ++c) total += std::exp(static_cast<double>(row[c]) - peak);
            json top = json::array();
            for (size_t c : top_k(row, n, 5))
                top.push_back({{"class", c}, {"label", c < labels.size() ? labels[c] : std::to_string(c)},
                               {"probability", std::exp(static_cast<double>(row[c]) - peak) / total}, {"logit", row[c]}});
            item["top"] = top;
        } else {
            json features = json::array();
            for (const auto& [name, y] : ys) {
                size_t n = y.sample_size();
                const float* v = &y.data[i * n];
                double mean = std::accumulate(v, v + n, 0.0) / n, var = 0;
                for (size_t k = 0; k < n; ++k) var += (v[k] - mean) * (v[k] - mean);
                std::vector<int64_t> shape(y.shape.begin() + 1, y.shape.end());
                features.push_back({{"output", name}, {"shape", shape}, {"mean", mean}, {"std", std::sqrt(var / n)},
                                    {"min", *std::min_element(v, v + n)}, {"max", *std::max_element(v, v + n)}});
            }
            item["features"] = features;
        }
        items.push_back(item);
        if (!args.save.empty()) {
            json paths = json::object();
            std::error_code error;
            std::filesystem::create_directories(args.save, error);
            if (error) throw Problem("cannot write --save " + args.save + ": " + error.message() + "; pass a writable folder");
            for (const auto& [name, y] : ys) {
                std::string path = args.save + "/" + stem(args.images[i]) + "." + name + ".npy";
                std::vector<int64_t> shape(y.shape.begin() + 1, y.shape.end());
                save_npy(path, shape, &y.data[i * y.sample_size()], y.sample_size());
                paths[name] = path;
            }
            saved.push_back(paths);
        }
    }
    report[classifier ? "predictions" : "features"] = items;
    if (!args.save.empty()) report["saved"] = saved;
    return report;
}

double peak_rss_mb() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    return 0;
}

// timing.measure + summarize: warm-up runs, then timed runs of one static-shape batch of seeded noise.
json bench(Model& model, const json& manifest, int warmup, int iters) {
    Tensor x{shape_of(manifest["input"]["shape"]), {}};
    size_t count = std::accumulate(x.shape.begin(), x.shape.end(), size_t{1}, std::multiplies<size_t>());
    std::mt19937 rng(0);
    std::normal_distribution<float> normal;
    for (size_t i = 0; i < count; ++i) x.data.push_back(normal(rng));
    for (int i = 0; i < warmup; ++i) model.run(x);
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
        auto start = std::chrono::steady_clock::now();
        model.run(x);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size(), var = 0;
    for (double t : ms) var += (t - mean) * (t - mean);
    return {{"batch", x.shape[0]}, {"warmup", warmup}, {"runs", ms.size()}, {"mean_ms", mean},
            {"std_ms", std::sqrt(var / ms.size())}, {"min_ms", *std::min_element(ms.begin(), ms.end())},
            {"p50_ms", percentile(ms, 50)}, {"p90_ms", percentile(ms, 90)}, {"p99_ms", percentile(ms, 99)},
            {"throughput", x.shape[0] * 1000.0 / mean}, {"peak_rss_mb", std::round(peak_rss_mb() * 10) / 10}};
}

std::string fixed(double value, int digits) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(digits);
    s << value;
    return s.str();
}

std::string describe(const json& report) {
    const json& info = report["runtime"];
    std::ostringstream out;
    out << report["model"].get<std::string>() << " " << report["precision"].get<std::string>() << " on "
        << info["runtime"].get<std::string>() << " " << info["version"].get<std::string>() << " ("
        << report["machine"].get<std::string>() << ", C++); " << report["files_checked"] << " files match manifest.json"
        << (report["signed_by"].is_null() ? "" : ", signed by key " + report["signed_by"].get<std::string>()) << "\n";
    if (report.value("seeded", false) && report.contains("predictions"))
        out << "note: seeded weights, not trained ones: the classes below are not meaningful\n";
    for (const auto& item : report.value("predictions", json::array())) {
        out << item["image"].get<std::string>() << "\n";
        for (const auto& p : item["top"])
            out << "  " << fixed(100 * p["probability"].get<double>(), 2) << "%  " << p["label"].get<std::string>()
                << " (" << p["class"] << ")\n";
    }
    for (const auto& item : report.value("features", json::array())) {
        out << item["image"].get<std::string>() << "\n";
        for (const auto& f : item["features"]) {
            std::string shape;
            for (const auto& d : f["shape"]) shape += (shape.empty() ? "" : "x") + d.dump();
            out << "  " << f["output"].get<std::string>() << " " << shape << "  mean " << fixed(f["mean"], 4) << "  std "
                << fixed(f["std"], 4) << "  min " << fixed(f["min"], 4) << "  max " << fixed(f["max"], 4) << "\n";
        }
    }
    for (const auto& paths : report.value("saved", json::array())) {
        std::string files;
        for (const auto& [name, path] : paths.items()) files += (files.empty() ? "" : ", ") + path.get<std::string>();
        out << "saved " << files << "\n";
    }
    if (report.contains("verify")) {
        const json& v = report["verify"];
        const json& m = v["metrics"];
        std::string failed;
        for (const auto& miss : v["failed"])
            failed += (failed.empty() ? "" : "; ") + miss["metric"].get<std::string>() + " " + fixed(miss["value"], 6);
        out << "verify: " << (v["passed"].get<bool>() ? "PASS" : "FAIL " + failed) << " on " << m["samples"]
            << " golden inputs (worst output " << m["output"].get<std::string>() << ": cosine " << fixed(m["cosine"], 6)
            << ", max abs " << m["max_abs"].get<double>() << ")\n";
        if (v.contains("remedy")) out << "note: " << v["remedy"].get<std::string>() << "\n";
    }
    if (report.contains("bench")) {
        const json& b = report["bench"];
        out << "bench: batch " << b["batch"] << ", " << b["runs"] << " runs after " << b["warmup"] << " warm-up: p50 "
            << fixed(b["p50_ms"], 2) << " ms, p90 " << fixed(b["p90_ms"], 2) << " ms, p99 " << fixed(b["p99_ms"], 2)
            << " ms, " << fixed(b["throughput"], 1) << " images/s; peak memory " << fixed(b["peak_rss_mb"], 0) << " MB\n";
    }
    std::string text = out.str();
    return text.substr(0, text.size() - 1);
}

std::string machine() {
    utsname name;
    return uname(&name) == 0 ? name.machine : "unknown";
}

int main_checked(int argc, char** argv) {
    Args args = parse(argc, argv);
    std::string folder = find_bundle(args.bundle);
    json signer = args.public_key.empty() ? json(nullptr) : json(check_signature(folder, args.public_key));
    json manifest = read_manifest(folder);
    check_tree(folder);
    check_files(folder, manifest);
    std::string here = machine() == "x86_64" ? "linux/x86_64" : machine() == "aarch64" ? "linux/arm64" : machine();
    if (here != manifest["bundle"]["platform"].get<std::string>())
        std::cerr << "warning: bundle made for " << manifest["bundle"]["platform"].get<std::string>() << ", this is "
                  << here << "\n";
    std::unique_ptr<Model> model;
    try {
        model = open_model(file_with_role(folder, manifest, "model"), manifest["precision"], args.threads);
    } catch (const Problem&) {
        throw;
    } catch (const std::exception& error) {
        std::string message = error.what();
        throw Problem(manifest["bundle"]["runtime"]["package"].get<std::string>() + " could not load the model: " +
                      message.substr(0, std::min<size_t>(200, message.find('\n'))));
    }
    check_model_io(manifest, *model);
    json report = {{"model", manifest["model"]["name"]}, {"precision", manifest["precision"]},
                   {"runtime", model->info}, {"runner", "cpp"}, {"machine", machine()},
                   {"files_checked", manifest["files"].size()}, {"signed_by", signer},
                   {"seeded", manifest["model"].contains("seed") && !manifest["model"]["seed"].is_null()}};
    if (!args.images.empty()) report.update(infer(*model, folder, manifest, args));
    if (args.verify) {
        report["verify"] = verify(*model, folder, manifest);
        if (!report["verify"]["passed"].get<bool>() && saturates(manifest, model->info))
            report["verify"]["remedy"] = "this x86 CPU has no VNNI: its INT8 kernels saturate on 8-bit weights: "
                                         "re-export with --int8-weight-bits 7";  // runtimes.SATURATION
    }
    if (args.bench) report["bench"] = bench(*model, manifest, args.warmup, args.iters);
    std::cout << (args.as_json ? report.dump(2) : describe(report)) << std::endl;
    return report.contains("verify") && !report["verify"]["passed"].get<bool>() ? 1 : 0;
}

}  // namespace
}  // namespace runner

int main(int argc, char** argv) {
    try {
        return runner::main_checked(argc, argv);
    } catch (const std::exception& error) {  // Problem, and the runtime's own errors while running
        std::string message = error.what();
        std::cerr << "error: " << message.substr(0, message.find('\n')) << std::endl;
        return 2;
    }
}
