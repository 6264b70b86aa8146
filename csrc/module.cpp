// identitydp_fast._C: the slim pybind11 module. Binds, checks and dispatches; the
// arithmetic lives in kernels/ (shared headers and CUDA device code) and csrc/cpu/.
// Arrays arrive as DLPack capsules (no torch headers here); outputs are allocated by
// the Python caller. Every op re-checks what it relies on (csrc/tensor_arg.h) and
// releases the GIL while it computes. One bind_*.cpp file per op family.
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "identitydp_fast native kernels (CPU/OpenMP and, if built with it, CUDA)";
#ifdef IDP_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
#ifdef _OPENMP
  m.attr("with_openmp") = true;
#else
  m.attr("with_openmp") = false;
#endif
  idp::bind_noise(m);
  idp::bind_resnet(m);
  idp::bind_geometry(m);
  idp::bind_aad(m);
  idp::bind_prior(m);
}
