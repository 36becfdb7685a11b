// ONNX Runtime through its C++ API (header-only over the versioned C API: compiled against these headers,
// it runs on any newer libonnxruntime.so.1), configured as runtimes.py's ONNX Runtime opener is.
#include <map>

#include <onnxruntime_cxx_api.h>

#include "runner.hpp"

namespace runner {
namespace {

class OrtModel : public Model {
public:
    OrtModel(const std::string& path, int threads)
        : env_(ORT_LOGGING_LEVEL_WARNING, "runner"), session_(nullptr) {
        Ort::SessionOptions options;
        options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
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
        info = {{"runtime", "onnxruntime"}, {"version", Ort::GetVersionString()}, {"device", "CPU"},
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
    return std::make_unique<OrtModel>(path, threads);
}

}  // namespace runner
