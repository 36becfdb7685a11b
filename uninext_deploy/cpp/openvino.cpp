// OpenVINO through ov::Core, configured as runtimes.py's OpenVINO opener is: the inference precision is
// always set (the CPU plugin otherwise runs FP32 models in bf16 on x86 with AVX512-BF16/AMX, f16 on ARM),
// latency hint, one stream.
#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>

#include <openvino/openvino.hpp>

#include "runner.hpp"

namespace runner {
namespace {

// runtimes.inference_precision: f32 but for FP16 artifacts, which take f16 where the CPU has it, else bf16.
std::string inference_precision(const std::string& precision, const std::vector<std::string>& capabilities) {
    auto has = [&](const char* name) {
        return std::find(capabilities.begin(), capabilities.end(), name) != capabilities.end();
    };
    if (precision != "fp16") return "f32";
    return has("FP16") ? "f16" : has("BF16") ? "bf16" : "f32";
}

// The library's version, refused when older than the headers this runner was compiled with (the pip package it
// was built against, downgraded since). A library of another release has another SONAME (libopenvino.so.2641 is
// 2026.4.1), which the loader itself refuses before this runs: rebuild the runner for it.
std::string checked_version() {
    std::string version = ov::get_openvino_version().buildNumber;  // "2026.4.1-20000-..."
    int major = 0, minor = 0, patch = 0;
    std::sscanf(version.c_str(), "%d.%d.%d", &major, &minor, &patch);
    if (std::tie(major, minor, patch) < std::make_tuple(OPENVINO_VERSION_MAJOR, OPENVINO_VERSION_MINOR, OPENVINO_VERSION_PATCH))
        throw Problem("openvino " + version + " is older than " + std::to_string(OPENVINO_VERSION_MAJOR) + "." +
                      std::to_string(OPENVINO_VERSION_MINOR) + "." + std::to_string(OPENVINO_VERSION_PATCH) +
                      ", whose headers this runner was built with; pip install -r requirements.txt, then rebuild it "
                      "(cmake -S cpp -B cpp/build && cmake --build cpp/build)");
    return version;
}

class OpenVinoModel : public Model {
public:
    OpenVinoModel(const std::string& path, const std::string& precision, int threads) {
        std::string version = checked_version();
        ov::Core core;
        auto capabilities = core.get_property("CPU", ov::device::capabilities);
        ov::AnyMap config{{"INFERENCE_PRECISION_HINT", inference_precision(precision, capabilities)},
                          {"PERFORMANCE_HINT", "LATENCY"}, {"NUM_STREAMS", "1"}};
        if (threads > 0) config["INFERENCE_NUM_THREADS"] = threads;
        compiled_ = core.compile_model(core.read_model(path), "CPU", config);
        request_ = compiled_.create_infer_request();
        for (const auto& port : compiled_.inputs()) inputs.push_back(entry(port));
        for (const auto& port : compiled_.outputs()) outputs.push_back(entry(port));
        info = {{"runtime", "openvino"}, {"version", version}, {"device", "CPU"},
                {"inference_precision", compiled_.get_property(ov::hint::inference_precision).to_string()},
                {"threads", compiled_.get_property(ov::inference_num_threads)}};
    }

    Outputs run(const Tensor& input) override {
        ov::Shape shape(input.shape.begin(), input.shape.end());
        request_.set_input_tensor(ov::Tensor(ov::element::f32, shape, const_cast<float*>(input.data.data())));
        request_.infer();
        Outputs outputs;
        for (const auto& port : compiled_.outputs()) {
            ov::Tensor y = request_.get_tensor(port);
            if (y.get_element_type() != ov::element::f32)
                throw Problem("output " + port.get_any_name() + " is not f32; re-export the bundle");
            const float* data = y.data<const float>();
            std::vector<int64_t> dims(y.get_shape().begin(), y.get_shape().end());
            outputs.emplace_back(port.get_any_name(), Tensor{dims, {data, data + y.get_size()}});
        }
        return outputs;
    }

private:
    // runtimes._openvino_entry: dims as ints (a dynamic one as OpenVINO prints it), element types as numpy names them
    static json entry(const ov::Output<const ov::Node>& port) {
        json shape = json::array();
        for (const auto& dim : port.get_partial_shape())
            shape.push_back(dim.is_static() ? json(dim.get_length()) : json(dim.to_string()));
        static const std::map<std::string, std::string> names = {
            {"f32", "float32"}, {"f16", "float16"}, {"f64", "float64"}, {"i64", "int64"}, {"i32", "int32"},
            {"i8", "int8"}, {"u8", "uint8"}, {"boolean", "bool"}};
        std::string type = port.get_element_type().get_type_name();
        auto found = names.find(type);
        return {{"name", port.get_any_name()}, {"shape", shape}, {"dtype", found != names.end() ? found->second : type}};
    }

    ov::CompiledModel compiled_;
    ov::InferRequest request_;
};

}  // namespace

std::unique_ptr<Model> open_model(const std::string& path, const std::string& precision, int threads) {
    return std::make_unique<OpenVinoModel>(path, precision, threads);
}

}  // namespace runner
