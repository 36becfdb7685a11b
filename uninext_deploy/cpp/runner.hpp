// The bundle's C++ runner: what every runtime's source (ort.cpp, openvino.cpp) shares.
// Bundles ship this file verbatim; runner.cpp holds the verbs, the runtime source only opens and runs.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace runner {

using json = nlohmann::json;

// Something the user must fix: printed as one line, exit code 2 (as run.py's Problem).
struct Problem : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Tensor {
    std::vector<int64_t> shape;
    std::vector<float> data;
    size_t sample_size() const { return shape.empty() || shape[0] == 0 ? 0 : data.size() / shape[0]; }
};

// {output name, output batch}, in the model's output order.
using Outputs = std::vector<std::pair<std::string, Tensor>>;

class Model {
public:
    virtual ~Model() = default;
    // One static-shape input batch in, every output out.
    virtual Outputs run(const Tensor& input) = 0;
    json info;  // runtime, version, device, threads (and what else the runtime tells)
    // The model's own description of its tensors, [{name, shape, dtype}] in its order, dtype as numpy names it:
    // checked against the manifest before anything runs (integrity.check_model_io).
    json inputs = json::array(), outputs = json::array();
};

// Defined by the runtime's own source: open the bundle's model file for an artifact of `precision`
// on `threads` CPU threads (0: the runtime's default).
std::unique_ptr<Model> open_model(const std::string& path, const std::string& precision, int threads);

}  // namespace runner
