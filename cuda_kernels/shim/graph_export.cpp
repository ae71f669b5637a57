// OrtGraph -> the graph JSON document described in ep_trtpy/_host.py, plus initializer / tensor-attribute data.
//
// Two passes: gather (every value info by name, the constant initializers including outer-scope ones a nested
// subgraph reads, the nodes in ORT's topological order), then write. Everything ORT hands out here is valid only
// during the GetCapability / Compile call; the document and HostTensors own copies or point at ORT's initializer
// buffers, which live at least as long as that call.
#include "graph_export.h"

#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "json_writer.h"
#include "ort_values.h"

namespace tp::shim {

bool g_string_attr_has_nul = false;
bool g_string_attr_binary = false;

namespace {

using namespace ort::api;

// STRING attributes longer than this travel as uint8 tensors beside the document ({"type": "bytes"}).
constexpr size_t kLargeStringBytes = 64 * 1024;

std::string value_name(const OrtValueInfo* vi) {
  if (vi == nullptr) return std::string();
  const char* name = nullptr;
  check(api<GetValueInfoName>()(vi, &name), "GetValueInfoName");
  return name ? name : "";
}

template <typename S>
bool flag(const OrtValueInfo* vi, const char* what) {
  bool b = false;
  check(api<S>()(vi, &b), what);
  return b;
}

struct ValueType {
  int32_t dtype = 0;
  bool has_shape = false;
  std::vector<int64_t> shape;
  std::vector<std::string> symbols;
};

ValueType value_type(const OrtValueInfo* vi) {
  ValueType t;
  const OrtTypeInfo* ti = nullptr;
  OrtStatus* st = api<GetValueInfoTypeInfo>()(vi, &ti);
  if (st != nullptr) {  // a value without type information: unknown
    take_status_message(st);
    return t;
  }
  if (ti == nullptr) return t;
  ort::OnnxType onnx_type = ort::kOnnxTypeUnknown;
  check(api<GetOnnxTypeFromTypeInfo>()(ti, &onnx_type), "GetOnnxTypeFromTypeInfo");
  if (onnx_type != ort::kOnnxTypeTensor) return t;
  const OrtTensorTypeAndShapeInfo* tsi = nullptr;
  check(api<CastTypeInfoToTensorInfo>()(ti, &tsi), "CastTypeInfoToTensorInfo");
  if (tsi == nullptr) return t;
  ort::ElementType et = ort::kElemUndefined;
  check(api<GetTensorElementType>()(tsi, &et), "GetTensorElementType");
  t.dtype = static_cast<int32_t>(et);
  if (!api<TensorTypeAndShape_HasShape>()(tsi)) return t;
  size_t n = 0;
  check(api<GetDimensionsCount>()(tsi, &n), "GetDimensionsCount");
  t.shape.resize(n);
  std::vector<const char*> symbols(n, nullptr);
  if (n) {
    check(api<GetDimensions>()(tsi, t.shape.data(), n), "GetDimensions");
    check(api<GetSymbolicDimensions>()(tsi, symbols.data(), n), "GetSymbolicDimensions");
  }
  for (const char* s : symbols) t.symbols.emplace_back(s ? s : "");
  t.has_shape = true;
  return t;
}

template <typename CountSlot, typename GetSlot, typename Owner>
std::vector<const OrtValueInfo*> value_infos(const Owner* owner, const char* what) {
  size_t n = 0;
  check(api<CountSlot>()(owner, &n), what);
  std::vector<const OrtValueInfo*> out(n, nullptr);
  if (n) check(api<GetSlot>()(owner, out.data(), n), what);
  return out;
}

// Reads a variable-size attribute value (INTS, FLOATS, STRING, STRINGS) as raw bytes.
std::vector<char> read_attr_bytes(const OrtOpAttr* attr, ort::OpAttrType type) {
  size_t needed = 0;
  OrtStatus* st = api<ReadOpAttr>()(attr, type, nullptr, 0, &needed);
  take_status_message(st);  // "buffer too small" is the expected answer to the size query
  std::vector<char> buf(needed);
  if (needed == 0) return buf;
  size_t got = 0;
  check(api<ReadOpAttr>()(attr, type, buf.data(), buf.size(), &got), "ReadOpAttr");
  buf.resize(got < needed ? got : needed);
  return buf;
}

void write_attr(JsonWriter& w, const OrtOpAttr* attr, const std::string& node, HostTensors& tensors) {
  const char* name_c = nullptr;
  check(api<OpAttr_GetName>()(attr, &name_c), "OpAttr_GetName");
  const std::string name = name_c ? name_c : "";
  ort::OpAttrType type = ort::kAttrUndefined;
  OrtStatus* st = api<OpAttr_GetType>()(attr, &type);
  if (st != nullptr) {
    take_status_message(st);
    type = ort::kAttrUndefined;
  }
  w.key(name);
  w.begin_object();
  switch (type) {
    case ort::kAttrInt: {
      int64_t v = 0;
      size_t got = 0;
      check(api<ReadOpAttr>()(attr, type, &v, sizeof v, &got), "ReadOpAttr(INT)");
      w.key("type"), w.value("int"), w.key("value"), w.value(v);
      break;
    }
    case ort::kAttrFloat: {
      float v = 0;
      size_t got = 0;
      check(api<ReadOpAttr>()(attr, type, &v, sizeof v, &got), "ReadOpAttr(FLOAT)");
      w.key("type"), w.value("float"), w.key("value"), w.value_float32(v);
      break;
    }
    case ort::kAttrInts: {
      std::vector<char> b = read_attr_bytes(attr, type);
      w.key("type"), w.value("ints"), w.key("value"), w.begin_array();
      for (size_t i = 0; i + sizeof(int64_t) <= b.size(); i += sizeof(int64_t)) {
        int64_t v;
        std::memcpy(&v, b.data() + i, sizeof v);
        w.value(v);
      }
      w.end_array();
      break;
    }
    case ort::kAttrFloats: {
      std::vector<char> b = read_attr_bytes(attr, type);
      w.key("type"), w.value("floats"), w.key("value"), w.begin_array();
      for (size_t i = 0; i + sizeof(float) <= b.size(); i += sizeof(float)) {
        float v;
        std::memcpy(&v, b.data() + i, sizeof v);
        w.value_float32(v);
      }
      w.end_array();
      break;
    }
    case ort::kAttrString: {
      std::vector<char> b = read_attr_bytes(attr, type);
      if (g_string_attr_has_nul && !b.empty() && b.back() == '\0') b.pop_back();
      if (b.size() > kLargeStringBytes) {  // e.g. an EPContext node's engine: beside the document, not in it
        size_t index = tensors.add_bytes(node + "." + name, std::move(b));
        w.key("type"), w.value("bytes"), w.key("index"), w.value(static_cast<int64_t>(index));
        break;
      }
      w.key("type"), w.value("string"), w.key("value"), w.value(std::string(b.begin(), b.end()));
      break;
    }
    case ort::kAttrStrings: {
      // Each string is followed by a NUL.
      std::vector<char> b = read_attr_bytes(attr, type);
      w.key("type"), w.value("strings"), w.key("value"), w.begin_array();
      size_t start = 0;
      for (size_t i = 0; i < b.size(); ++i) {
        if (b[i] == '\0') {
          w.value(std::string(b.begin() + start, b.begin() + i));
          start = i + 1;
        }
      }
      if (start < b.size()) w.value(std::string(b.begin() + start, b.end()));
      w.end_array();
      break;
    }
    case ort::kAttrTensor: {
      OrtValue* value = nullptr;
      check(api<OpAttr_GetTensorAttributeAsOrtValue>()(attr, &value),
            ("reading tensor attribute '" + name + "' of node '" + node + "'").c_str());
      tensors.own(value);
      size_t index = tensors.add("", value);
      w.key("type"), w.value("tensor"), w.key("index"), w.value(static_cast<int64_t>(index));
      break;
    }
    case ort::kAttrGraph:
      w.key("type"), w.value("graph");
      break;
    default:
      w.key("type"), w.value("unknown");
      break;
  }
  w.end_object();
}

}  // namespace

// ------------------------------------------------------------------------------------------ HostTensors ---

HostTensors::~HostTensors() {
  if (g_api == nullptr) return;
  for (OrtValue* v : owned_) api<ReleaseValue>()(v);
}

size_t HostTensors::add(const std::string& name, const OrtValue* value) {
  items_.emplace_back();
  Item& item = items_.back();
  item.name = name;
  TensorShape shape = tensor_shape(value);
  item.dims = shape.dims;
  tp_host_tensor t{};
  t.name = item.name.c_str();
  t.dtype = shape.dtype;
  t.dims = item.dims.data();
  t.ndims = item.dims.size();
  const size_t esize = element_size(shape.dtype);
  if (esize != 0) {  // fixed-size element types only; others travel without data
    t.nbytes = static_cast<size_t>(shape.numel()) * esize;
    const void* data = t.nbytes ? tensor_data(value) : nullptr;
    Placement where = value_placement(value);
    if (where.on_device && t.nbytes) {
      if (!where.ours) fail("initializer '" + name + "' lives in memory of another vendor's device; cannot read it");
      item.host_copy.resize(t.nbytes);
      if (tp_cuda_memcpy(item.host_copy.data(), data, t.nbytes, TP_COPY_DEVICE_TO_HOST, nullptr) != 0)
        fail("copying initializer '" + name + "' to the host: " + runtime_error_message());
      data = item.host_copy.data();
    }
    t.data = data;
  }
  views_.push_back(t);
  // Keep every view's pointers valid: items_ is a deque (stable), dims/name/host_copy never move after this.
  return views_.size() - 1;
}

size_t HostTensors::add_bytes(const std::string& name, std::vector<char>&& bytes) {
  items_.emplace_back();
  Item& item = items_.back();
  item.name = name;
  item.dims = {static_cast<int64_t>(bytes.size())};
  item.host_copy.assign(bytes.begin(), bytes.end());
  std::vector<char>().swap(bytes);
  tp_host_tensor t{};
  t.name = item.name.c_str();
  t.dtype = ort::kElemUint8;
  t.dims = item.dims.data();
  t.ndims = 1;
  t.nbytes = item.host_copy.size();
  t.data = item.host_copy.data();
  views_.push_back(t);
  return views_.size() - 1;
}

// ---------------------------------------------------------------------------------------------- export ---

std::string node_name(const OrtNode* node) {
  const char* s = nullptr;
  check(api<Node_GetName>()(node, &s), "Node_GetName");
  return s ? s : "";
}

std::vector<std::string> node_input_names(const OrtNode* node) {
  std::vector<std::string> out;
  for (const OrtValueInfo* vi : value_infos<Node_GetNumInputs, Node_GetInputs>(node, "Node_GetInputs"))
    out.push_back(value_name(vi));
  return out;
}

std::vector<std::string> node_output_names(const OrtNode* node) {
  std::vector<std::string> out;
  for (const OrtValueInfo* vi : value_infos<Node_GetNumOutputs, Node_GetOutputs>(node, "Node_GetOutputs"))
    out.push_back(value_name(vi));
  return out;
}

void export_graph(const OrtGraph* graph, const OrtNode* fused_node, GraphExport* out) {
  // ---- gather
  std::vector<std::string> value_order;  // first-seen order of every named value
  std::unordered_map<std::string, const OrtValueInfo*> values;
  auto note = [&](const OrtValueInfo* vi) -> std::string {
    std::string name = value_name(vi);
    if (!name.empty() && values.emplace(name, vi).second) value_order.push_back(name);
    return name;
  };

  std::vector<std::string> inputs, outputs, initializer_names;
  std::vector<const OrtValueInfo*> initializer_infos;
  std::unordered_set<std::string> input_set, initializer_set;

  const auto graph_initializers =
      value_infos<Graph_GetNumInitializers, Graph_GetInitializers>(graph, "Graph_GetInitializers");
  for (const OrtValueInfo* vi : graph_initializers) {
    std::string name = note(vi);
    if (name.empty()) continue;
    // Overridable initializers (also graph inputs) can change per run: they are inputs, not constants.
    if (!flag<ValueInfo_IsConstantInitializer>(vi, "ValueInfo_IsConstantInitializer")) continue;
    if (initializer_set.insert(name).second) initializer_names.push_back(name), initializer_infos.push_back(vi);
  }
  for (const OrtValueInfo* vi : value_infos<Graph_GetNumInputs, Graph_GetInputs>(graph, "Graph_GetInputs")) {
    std::string name = note(vi);
    if (name.empty() || initializer_set.count(name)) continue;
    if (input_set.insert(name).second) inputs.push_back(name);
  }
  for (const OrtValueInfo* vi : value_infos<Graph_GetNumOutputs, Graph_GetOutputs>(graph, "Graph_GetOutputs"))
    outputs.push_back(note(vi));

  size_t num_nodes = 0;
  check(api<Graph_GetNumNodes>()(graph, &num_nodes), "Graph_GetNumNodes");
  out->nodes.assign(num_nodes, nullptr);
  if (num_nodes) check(api<Graph_GetNodes>()(graph, out->nodes.data(), num_nodes), "Graph_GetNodes");

  struct NodeIo {
    std::vector<std::string> inputs, outputs;
  };
  std::vector<NodeIo> node_io(num_nodes);
  std::vector<std::string> outer_scope;
  for (size_t i = 0; i < num_nodes; ++i) {
    for (const OrtValueInfo* vi : value_infos<Node_GetNumInputs, Node_GetInputs>(out->nodes[i], "Node_GetInputs")) {
      std::string name = note(vi);
      node_io[i].inputs.push_back(name);
      if (vi == nullptr || name.empty() || initializer_set.count(name) || input_set.count(name)) continue;
      // A constant initializer the graph reads without listing it (outer scope of a nested subgraph).
      if (!flag<ValueInfo_IsConstantInitializer>(vi, "ValueInfo_IsConstantInitializer")) {
        if (flag<ValueInfo_IsFromOuterScope>(vi, "ValueInfo_IsFromOuterScope") && input_set.insert(name).second)
          outer_scope.push_back(name);
        continue;
      }
      initializer_set.insert(name);
      initializer_names.push_back(name);
      initializer_infos.push_back(vi);
    }
    for (const OrtValueInfo* vi : value_infos<Node_GetNumOutputs, Node_GetOutputs>(out->nodes[i], "Node_GetOutputs"))
      node_io[i].outputs.push_back(note(vi));
  }

  std::vector<std::string> fused_inputs, fused_outputs;
  std::string fused_name;
  if (fused_node != nullptr) {
    fused_name = node_name(fused_node);
    fused_inputs = node_input_names(fused_node);
    fused_outputs = node_output_names(fused_node);
  }

  // Initializer data (named ones first, so index i of the document's list is tensors[i]).
  for (size_t i = 0; i < initializer_infos.size(); ++i) {
    const OrtValue* value = nullptr;
    check(api<ValueInfo_GetInitializerValue>()(initializer_infos[i], &value),
          ("reading initializer '" + initializer_names[i] + "'").c_str());
    if (value == nullptr) fail("ORT returned no data for initializer '" + initializer_names[i] + "'");
    out->tensors.add(initializer_names[i], value);
  }

  // ---- write
  JsonWriter w;
  w.begin_object();
  {
    const char* s = nullptr;
    check(api<Graph_GetName>()(graph, &s), "Graph_GetName");
    w.key("name"), w.value(s ? s : "");
    s = nullptr;
    check(api<Graph_GetModelPath>()(graph, &s), "Graph_GetModelPath");
    w.key("model_path"), w.value(s ? s : "");
  }
  {
    size_t n = 0;
    check(api<Graph_GetNumOperatorSets>()(graph, &n), "Graph_GetNumOperatorSets");
    std::vector<const char*> domains(n, nullptr);
    std::vector<int64_t> versions(n, 0);
    if (n) check(api<Graph_GetOperatorSets>()(graph, domains.data(), versions.data(), n), "Graph_GetOperatorSets");
    w.key("opsets"), w.begin_object();
    for (size_t i = 0; i < n; ++i) w.key(domains[i] ? domains[i] : ""), w.value(versions[i]);
    w.end_object();
  }
  auto write_names = [&](const char* key, const std::vector<std::string>& names) {
    w.key(key), w.begin_array();
    for (const auto& n : names) w.value(n);
    w.end_array();
  };
  write_names("inputs", inputs);
  write_names("outputs", outputs);
  write_names("initializers", initializer_names);
  write_names("outer_scope_values", outer_scope);
  {
    // The node owning this graph when it is the body of an If/Loop/Scan (ORT asks GetCapability per subgraph).
    const OrtNode* parent = nullptr;
    check(api<Graph_GetParentNode>()(graph, &parent), "Graph_GetParentNode");
    w.key("parent_node");
    if (parent == nullptr) {
      w.null();
    } else {
      const char* pname = nullptr;
      check(api<Node_GetName>()(parent, &pname), "Node_GetName");
      w.value(std::string(pname ? pname : ""));
    }
  }

  w.key("values"), w.begin_object();
  for (const std::string& name : value_order) {
    ValueType t = value_type(values[name]);
    w.key(name), w.begin_object();
    w.key("dtype"), w.value(t.dtype);
    w.key("shape");
    if (t.has_shape) {
      w.begin_array();
      for (int64_t d : t.shape) w.value(d < 0 ? int64_t{-1} : d);
      w.end_array();
    } else {
      w.null();
    }
    w.key("dims"), w.begin_array();
    for (const auto& s : t.symbols) w.value(s);
    w.end_array();
    w.end_object();
  }
  w.end_object();

  w.key("nodes"), w.begin_array();
  for (size_t i = 0; i < num_nodes; ++i) {
    const OrtNode* node = out->nodes[i];
    const char* op_type = nullptr;
    const char* domain = nullptr;
    int since = 0;
    check(api<Node_GetOperatorType>()(node, &op_type), "Node_GetOperatorType");
    check(api<Node_GetDomain>()(node, &domain), "Node_GetDomain");
    check(api<Node_GetSinceVersion>()(node, &since), "Node_GetSinceVersion");
    const std::string name = node_name(node);
    w.begin_object();
    w.key("name"), w.value(name);
    w.key("op_type"), w.value(op_type ? op_type : "");
    w.key("domain"), w.value(domain ? domain : "");
    w.key("since_version"), w.value(since);
    write_names("inputs", node_io[i].inputs);
    write_names("outputs", node_io[i].outputs);
    size_t num_attrs = 0;
    check(api<Node_GetNumAttributes>()(node, &num_attrs), "Node_GetNumAttributes");
    std::vector<const OrtOpAttr*> attrs(num_attrs, nullptr);
    if (num_attrs) check(api<Node_GetAttributes>()(node, attrs.data(), num_attrs), "Node_GetAttributes");
    w.key("attrs"), w.begin_object();
    for (const OrtOpAttr* attr : attrs)
      if (attr != nullptr) write_attr(w, attr, name, out->tensors);
    w.end_object();
    w.end_object();
  }
  w.end_array();

  if (fused_node != nullptr) {
    w.key("fused_node"), w.begin_object();
    w.key("name"), w.value(fused_name);
    write_names("inputs", fused_inputs);
    write_names("outputs", fused_outputs);
    w.end_object();
  }
  w.end_object();
  out->json = w.take();
}

}  // namespace tp::shim
