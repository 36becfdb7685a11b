// ONNX Runtime through its C++ API (header-only over the versioned C API: compiled against these headers,
// it runs on any libonnxruntime.so.1 that serves their API version), configured as runtimes.py's ONNX Runtime
// opener is. The library is opened at start from the pip package cmake found (ORT_LIBRARY_DIR), not linked: the
// wheel's file is libonnxruntime.so.1.X.Y and its SONAME libonnxruntime.so.1, a name only a link could give it,
// and a link out of the bundle folder fails the bundle's integrity check. Reinstalling onnxruntime there needs
// no rebuild.
#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#define ORT_API_MANUAL_INIT  // Ort::InitApi below, once the library's version is known to serve ORT_API_VERSION
#include <onnxruntime_cxx_api.h>

#include "runner.hpp"

namespace runner {
namespace {

const std::string NEEDED = "1." + std::to_string(ORT_API_VERSION);  // the release that brought these headers' C API
const std::string FIX = "; install a newer one: pip install -r requirements.txt";

// The onnxruntime wheel's library in ORT_LIBRARY_DIR, whichever version is installed there now (a wheel holds one).
std::string library_path() {
    std::vector<std::string> found;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(ORT_LIBRARY_DIR, error))
        if (entry.path().filename().string().rfind("libonnxruntime.so.1.", 0) == 0) found.push_back(entry.path());
    if (found.empty())
        throw Problem(std::string("no libonnxruntime.so.1.* in ") + ORT_LIBRARY_DIR + ", where cmake found onnxruntime " +
                      "(its wheels up to 1.18 ship none; this runner needs " + NEEDED + " or newer)" + FIX);
    return *std::min_element(found.begin(), found.end());
}

// Open the library and hand its API to the C++ API. ONNX Runtime 1.N serves C API versions 1..N; asked for a newer
// one, GetApi prints its own complaint and returns null, on which the C++ API crashed (onnxruntime 1.20.1: rc 139).
// So the version is checked first. The version string, as the library gives it.
std::string load_onnxruntime() {
    std::string path = library_path();
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) throw Problem(std::string("cannot load ") + dlerror() + FIX);
    using GetApiBase = const OrtApiBase* (*)();
    auto get_api_base = reinterpret_cast<GetApiBase>(dlsym(library, "OrtGetApiBase"));
    if (get_api_base == nullptr) throw Problem(path + " has no OrtGetApiBase, it is not ONNX Runtime's library" + FIX);
    const OrtApiBase* base = get_api_base();
    std::string version = base->GetVersionString();
    int major = 0, minor = 0;
    std::sscanf(version.c_str(), "%d.%d", &major, &minor);
    if (major == 1 && minor < ORT_API_VERSION)
        throw Problem("onnxruntime " + version + " is older than " + NEEDED + ", whose C API (version " +
                      std::to_string(ORT_API_VERSION) + ") this runner was built with" + FIX);
    const OrtApi* api = base->GetApi(ORT_API_VERSION);
    if (api == nullptr)
        throw Problem("onnxruntime " + version + " serves no C API version " + std::to_string(ORT_API_VERSION) +
                      ", which this runner was built with; pip install -r requirements.txt");
    Ort::InitApi(api);
    return version;
}

// How many CPUs this process may run on when fewer than the machine has (taskset, a container's cpuset), else 0:
// ONNX Runtime's default pool takes every core and pins its threads there (runtimes.py's allowed_cpus).
int allowed_cpus() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    int allowed = CPU_COUNT(&set);
    return allowed < sysconf(_SC_NPROCESSORS_ONLN) ? allowed : 0;
}

class OrtModel : public Model {
public:
    OrtModel(const std::string& path, int threads, const std::string& version)
        : env_(ORT_LOGGING_LEVEL_WARNING, "runner"), session_(nullptr) {
        Ort::SessionOptions options;
        options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
        if (threads <= 0) threads = allowed_cpus();
        if (threads > 0) {
            options.SetIntraOpNumThreads(threads);
            options.SetInterOpNumThreads(1);  // sequential execution never uses the inter-op pool
        }
        session_ = Ort::Session(env_, path.c_str(), options);
        Ort::AllocatorWithDefaultOptions allocator;
        input_name_ = session_.GetInputNameAllocated(0, allocator).get();
        for (size_t i = 0; i < session_.GetOutputCount(); ++i)
            output_names_.push_back(session_.GetOutputNameAllocated(i, allocator).get());
        for (size_t i = 0; i < session_.GetInputCount(); ++i)
            inputs.push_back(entry(session_.GetInputNameAllocated(i, allocator).get(), session_.GetInputTypeInfo(i)));
        for (size_t i = 0; i < session_.GetOutputCount(); ++i)
            outputs.push_back(entry(output_names_[i], session_.GetOutputTypeInfo(i)));
        info = {{"runtime", "onnxruntime"}, {"version", version}, {"device", "CPU"},
                {"threads", threads > 0 ? json(threads) : json("default")},
                {"providers", {"CPUExecutionProvider"}}};
    }

    Outputs run(const Tensor& input) override {
        auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
        Ort::Value x = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(input.data.data()),
                                                       input.data.size(), input.shape.data(), input.shape.size());
        const char* in_names[] = {input_name_.c_str()};
        std::vector<const char*> out_names;
        for (const auto& name : output_names_) out_names.push_back(name.c_str());
        auto ys = session_.Run(Ort::RunOptions{nullptr}, in_names, &x, 1, out_names.data(), out_names.size());
        Outputs outputs;
        for (size_t i = 0; i < ys.size(); ++i) {
            auto type = ys[i].GetTensorTypeAndShapeInfo();
            if (type.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
                throw Problem("output " + output_names_[i] + " is not float32; re-export the bundle");
            const float* data = ys[i].GetTensorData<float>();
            outputs.emplace_back(output_names_[i], Tensor{type.GetShape(), {data, data + type.GetElementCount()}});
        }
        return outputs;
    }

private:
    // runtimes._ort_entry: a dynamic dim (-1) as the name ONNX Runtime gives it, element types as numpy names them
    static json entry(const std::string& name, const Ort::TypeInfo& type) {
        auto tensor = type.GetTensorTypeAndShapeInfo();
        json shape = json::array();
        std::vector<int64_t> dims = tensor.GetShape();
        std::vector<const char*> symbolic(dims.size(), nullptr);
        tensor.GetSymbolicDimensions(symbolic.data(), symbolic.size());
        for (size_t i = 0; i < dims.size(); ++i)
            shape.push_back(dims[i] >= 0 ? json(dims[i]) : json(symbolic[i] ? symbolic[i] : "None"));
        static const std::map<ONNXTensorElementDataType, std::string> names = {
            {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "float32"}, {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, "float16"},
            {ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE, "float64"}, {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, "int64"},
            {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, "int32"}, {ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "int8"},
            {ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "uint8"}, {ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, "bool"}};
        auto found = names.find(tensor.GetElementType());
        return {{"name", name}, {"shape", shape},
                {"dtype", found != names.end() ? found->second : "type " + std::to_string(tensor.GetElementType())}};
    }

    Ort::Env env_;
    Ort::Session session_;
    std::string input_name_;
    std::vector<std::string> output_names_;
};

}  // namespace

std::unique_ptr<Model> open_model(const std::string& path, const std::string&, int threads) {
    std::string version = load_onnxruntime();
    return std::make_unique<OrtModel>(path, threads, version);
}

}  // namespace runner
