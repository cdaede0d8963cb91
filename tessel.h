// tessel.h — everything a program embedding tessel needs (installed as <tessel/tessel.h>).
#pragma once
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops/copy.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/view.h"
#include "core/allocator.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/shape.h"
#include "core/tensor.h"
