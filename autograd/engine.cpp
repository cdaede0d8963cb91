// autograd/engine.cpp — the backward pass. The 30 lines to read first are run_backward().
#include "autograd/engine.h"

#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/ops/elementwise.h"

namespace tessel {

// ---------------------------------------------------------------- grad mode

namespace {
thread_local bool g_grad_enabled = true;
thread_local int g_grad_api_depth = 0;  // > 0 while tessel::grad() runs
std::atomic<uint64_t> g_next_seq{0};
}  // namespace

bool GradMode::is_enabled() { return g_grad_enabled; }
bool grad_api_running() { return g_grad_api_depth > 0; }
void GradMode::set_enabled(bool on) { g_grad_enabled = on; }

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void check_inplace(const Tensor& t, const char* op) {
  check(!(g_grad_enabled && t.requires_grad()), op, "in-place op on a tensor of shape ", t.sizes(),
        " that requires grad; tessel does not differentiate in-place ops: use the out-of-place op, "
        "or wrap the update in NoGradGuard (as optimizers do)");
}

// ---------------------------------------------------------------- recording

const Tensor& Saved::get() const {
  if (t_.defined() && t_.version() != version_)
    fail(op_, "a tensor of shape ", t_.sizes(),
         " saved for backward was modified in place after it was "
         "saved (version ",
         version_, ", now ", t_.version(),
         "); the gradient would be wrong. Use an "
         "out-of-place op or clone() it before modifying");
  return t_;
}

void record(const char* name, const Tensor& out, const std::vector<Tensor>& inputs, BackwardFn fn, bool save_output) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->seq = g_next_seq.fetch_add(1);
  node->next.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    check(!in.defined() || !in.same(out), name, "internal error: an op's output must be a new tensor");
    Edge e;
    if (in.defined() && in.requires_grad()) {
      if (in.grad_fn())
        e.fn = in.grad_fn();
      else
        e.leaf = in.impl_ptr();
    }
    node->next.push_back(std::move(e));
    node->input_sizes.push_back(in.defined() ? in.sizes() : Shape{});
    node->input_dtypes.push_back(in.defined() ? in.dtype() : DType::f32);
  }
  node->backward = std::move(fn);
  if (save_output) {
    node->saved_output = out.detach();
    node->saved_output_version = out.version();
  }
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}

// ---------------------------------------------------------------- backward

namespace {

struct RunOptions {
  bool retain_graph = false;
  bool create_graph = false;
  bool accumulate = true;  // into leaves' .grad (false for grad())
  // grad(): where the gradients of the requested inputs go (an input may be listed twice).
  std::unordered_map<const TensorImpl*, std::vector<size_t>>* want_leaf = nullptr;
  std::unordered_map<const Node*, std::vector<size_t>>* want_node = nullptr;
  TensorList* captured = nullptr;
};

// Sums the gradients reaching a Node by several paths. Always out of place: the tensors summed
// may be shared (add's backward hands the same gradient to both inputs), and a pending sum is
// never visible outside the engine, so the first arrival needs no copy.
void sum_pending(Tensor& slot, const Tensor& g) { slot = slot.defined() ? add(slot, g) : g; }

// Adds g into a gradient the user can see: a leaf's .grad, a retained grad, a grad() result.
// The first gradient is adopted only when nothing else can see its memory (one handle, one
// view, memory tessel owns) and copied otherwise, so that a later in-place accumulation or the
// user's zero_() never writes into a tensor someone else holds. With create_graph the copy and
// the sums are recorded ops.
void accumulate_into(Tensor& slot, const Tensor& g, bool create_graph) {
  if (!slot.defined()) {
    bool owned =
        g.storage().use_count() == 1 && g.impl_ptr().use_count() == 1 && !g.storage()->deleter && g.is_contiguous();
    if (create_graph)
      slot = owned ? g : clone(g);
    else
      slot = owned && !g.requires_grad() ? g.detach() : clone(g.detach());
  } else if (create_graph) {
    slot = add(slot, g);
  } else {
    NoGradGuard ng;
    add_(slot, g);
  }
}

// Runs tensor hooks in order; each may replace the gradient with one of the same shape and dtype.
Tensor apply_hooks(const std::vector<TensorHook>& hooks, Tensor g) {
  for (const TensorHook& h : hooks) {
    Tensor r = h(g);
    if (!r.defined()) continue;
    check(r.sizes() == g.sizes() && r.dtype() == g.dtype() && r.device() == g.device(), "register_hook",
          "a hook returned a gradient of shape ", r.sizes(), " (", dtype_name(r.dtype()), ") for a gradient of shape ",
          g.sizes(), " (", dtype_name(g.dtype()), "); a hook must keep the shape and dtype");
    g = r;
  }
  return g;
}

template <class Key>
void capture(const std::unordered_map<const Key*, std::vector<size_t>>* want, const Key* key, const Tensor& g,
             const RunOptions& o) {
  if (!want) return;
  auto it = want->find(key);
  if (it == want->end()) return;
  for (size_t pos : it->second) accumulate_into((*o.captured)[pos], g, o.create_graph);
}

// Takes g by value: when the caller moves its handle in, g is the only owner and may be adopted.
void deliver_to_leaf(const std::shared_ptr<TensorImpl>& leaf, Tensor g, const RunOptions& o) {
  g = apply_hooks(leaf->hooks, std::move(g));
  capture(o.want_leaf, leaf.get(), g, o);
  if (o.accumulate) {
    Tensor slot = leaf->grad ? Tensor(leaf->grad) : Tensor();
    accumulate_into(slot, g, o.create_graph);
    leaf->grad = slot.impl_ptr();
  }
}

// The output tensor as backward sees it: the saved alias, re-linked to its Node so that a
// backward recorded with create_graph differentiates through it.
Tensor saved_output_of(const std::shared_ptr<Node>& n) {
  const Tensor& s = n->saved_output;
  if (!s.defined()) return Tensor();
  if (s.version() != n->saved_output_version)
    fail(n->name.c_str(), "its output (shape ", s.sizes(),
         ") was modified in place after the op saved it "
         "for backward (version ",
         n->saved_output_version, ", now ", s.version(), "); use an out-of-place op or clone() the output first");
  Tensor out = s.detach();
  out.impl()->grad_fn = n;
  out.impl()->requires_grad = true;
  return out;
}

void run_backward(const TensorList& roots, const TensorList& root_grads, const RunOptions& o) {
  // 1. Find every Node reachable from the roots and count, for each, how many edges feed it.
  std::unordered_map<Node*, int> deps;
  std::vector<std::shared_ptr<Node>> stack;
  std::unordered_set<Node*> seen;
  for (const Tensor& r : roots)
    if (r.grad_fn() && seen.insert(r.grad_fn().get()).second) stack.push_back(r.grad_fn());
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    for (const Edge& e : n->next) {
      if (!e.fn) continue;
      ++deps[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn);
    }
  }
  // 2. Seed the roots' gradients. A Node is ready when every edge into it has delivered.
  std::unordered_map<Node*, Tensor> pending;  // summed incoming gradient per Node
  auto later_first = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) { return a->seq < b->seq; };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(later_first)> ready(
      later_first);
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    if (r.grad_fn()) {
      sum_pending(pending[r.grad_fn().get()], root_grads[i]);
      if (deps[r.grad_fn().get()] == 0 && seen.erase(r.grad_fn().get())) ready.push(r.grad_fn());
    } else {
      deliver_to_leaf(r.impl_ptr(), root_grads[i], o);
    }
  }
  // 3. Run Nodes in dependency order; each maps its output gradient to its inputs' gradients.
  while (!ready.empty()) {
    std::shared_ptr<Node> n = ready.top();
    ready.pop();
    Tensor g;
    if (auto it = pending.find(n.get()); it != pending.end()) {
      g = std::move(it->second);
      pending.erase(it);
    }
    TensorList grads(n->next.size());
    if (g.defined()) {
      g = apply_hooks(n->pre_hooks, std::move(g));
      if (auto keep = n->retain_into.lock()) {
        Tensor slot = keep->grad ? Tensor(keep->grad) : Tensor();
        accumulate_into(slot, g, o.create_graph);
        keep->grad = slot.impl_ptr();
      }
      capture(o.want_node, n.get(), g, o);
      if (!n->backward)
        fail(n->name.c_str(),
             "backward through this part of the graph a second time, but its saved "
             "tensors were freed by the first backward; pass retain_graph=true to the first call");
      grads = n->backward(g, saved_output_of(n));
      check(grads.size() == n->next.size(), n->name.c_str(), "internal error: backward returned ", grads.size(),
            " gradients for ", n->next.size(), " inputs");
    }
    if (!o.retain_graph) {  // free what the op saved, whether or not a gradient reached it
      n->backward = nullptr;
      n->saved_output = Tensor();
    }
    for (size_t i = 0; i < n->next.size(); ++i) {
      const Edge& e = n->next[i];
      Tensor& gi = grads[i];
      if (gi.defined()) {
        check(gi.sizes() == n->input_sizes[i], n->name.c_str(),
              "internal error: backward produced a "
              "gradient of shape ",
              gi.sizes(), " for input ", i, " of shape ", n->input_sizes[i]);
        if (gi.dtype() != n->input_dtypes[i]) gi = to_dtype(gi, n->input_dtypes[i]);
      }
      if (e.fn) {
        if (gi.defined()) sum_pending(pending[e.fn.get()], gi);
        if (--deps[e.fn.get()] == 0) ready.push(e.fn);
      } else if (e.leaf && gi.defined()) {
        deliver_to_leaf(e.leaf, std::move(gi), o);
      }
    }
  }
}

// A gradient the caller passed for tensor t: same shape and device, floating (converted to t's
// dtype if it differs).
Tensor checked_gradient(const Tensor& g, const Tensor& t, const char* op) {
  check(g.sizes() == t.sizes(), op, "gradient of shape ", g.sizes(), " does not match the tensor's shape ", t.sizes());
  check(g.device() == t.device(), op, "gradient is on ", g.device().str(), " but the tensor is on ", t.device().str());
  check(is_floating(g.dtype()), op, "gradient must be floating, got ", dtype_name(g.dtype()));
  return g.dtype() == t.dtype() ? g : to_dtype(g, t.dtype());
}

}  // namespace

void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  check(defined(), "backward", "called on an undefined tensor");
  check(requires_grad(), "backward", "the tensor of shape ", sizes(),
        " does not require grad: no input of the computation had requires_grad set (or it ran "
        "under NoGradGuard)");
  Tensor g = gradient;
  if (!g.defined()) {
    check(numel() == 1, "backward", "an implicit gradient needs a tensor with one element, got shape ", sizes(),
          "; pass a gradient of that shape");
    g = ones_like(*this);
  } else {
    g = checked_gradient(g, *this, "backward");
  }
  GradModeGuard mode(create_graph);  // record the backward only when asked to
  run_backward({*this}, {g}, {.retain_graph = retain_graph || create_graph, .create_graph = create_graph});
}

TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs, bool retain_graph,
                bool create_graph) {
  check(grad_outputs.empty() || grad_outputs.size() == outputs.size(), "grad", "got ", grad_outputs.size(),
        " grad_outputs for ", outputs.size(), " outputs");
  std::unordered_map<const TensorImpl*, std::vector<size_t>> want_leaf;
  std::unordered_map<const Node*, std::vector<size_t>> want_node;
  for (size_t i = 0; i < inputs.size(); ++i) {
    check(inputs[i].defined() && inputs[i].requires_grad(), "grad", "input ", i, " does not require grad");
    if (inputs[i].grad_fn())
      want_node[inputs[i].grad_fn().get()].push_back(i);
    else
      want_leaf[inputs[i].impl()].push_back(i);
  }
  TensorList gs;
  for (size_t i = 0; i < outputs.size(); ++i) {
    check(outputs[i].requires_grad(), "grad", "output ", i, " does not require grad");
    if (!grad_outputs.empty() && grad_outputs[i].defined()) {
      gs.push_back(checked_gradient(grad_outputs[i], outputs[i], "grad"));
    } else {
      check(outputs[i].numel() == 1, "grad", "output ", i, " has shape ", outputs[i].sizes(),
            "; an implicit gradient needs one element");
      gs.push_back(ones_like(outputs[i]));
    }
  }
  TensorList captured(inputs.size());
  GradModeGuard mode(create_graph);
  struct Depth {
    Depth() { ++g_grad_api_depth; }
    ~Depth() { --g_grad_api_depth; }
  } depth;
  run_backward(outputs, gs,
               {.retain_graph = retain_graph || create_graph,
                .create_graph = create_graph,
                .accumulate = false,
                .want_leaf = &want_leaf,
                .want_node = &want_node,
                .captured = &captured});
  return captured;
}

void Tensor::register_hook(TensorHook hook) const {
  check(requires_grad(), "register_hook", "the tensor of shape ", sizes(), " does not require grad");
  if (grad_fn())
    grad_fn()->pre_hooks.push_back(std::move(hook));
  else
    impl()->hooks.push_back(std::move(hook));
}

void Tensor::retain_grad() const {
  check(requires_grad(), "retain_grad", "the tensor of shape ", sizes(), " does not require grad");
  if (grad_fn()) grad_fn()->retain_into = impl_ptr();
}

}  // namespace tessel
