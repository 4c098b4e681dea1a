// oneDNN's blocked layout for a batch norm of (N, C, H, W) float32 on this CPU, shared by bench/peers/onednn.cpp and
// onednn-ab.cpp: nChw16c where oneDNN has a kernel for it other than its reference one (AVX-512), else nChw8c (its
// AVX2 block). oneDNN 2.6 runs nChw16c through its reference kernel on an AVX2-only CPU, 50-100x slower: timing that
// would compare normkit with a fallback nobody would pick.
#pragma once
#include <string>

#include <oneapi/dnnl/dnnl.hpp>

inline dnnl::memory::format_tag onednn_blocked_tag(dnnl::engine& eng, long N, long C, long H, long W) {
  using namespace dnnl;
  const batch_normalization_forward::primitive_desc pd(
      {prop_kind::forward_training, memory::desc({N, C, H, W}, memory::data_type::f32, memory::format_tag::nChw16c),
       1e-5f, normalization_flags::use_scale | normalization_flags::use_shift},
      eng);
  const bool reference = std::string(pd.impl_info_str()).find("ref") != std::string::npos;
  return reference ? memory::format_tag::nChw8c : memory::format_tag::nChw16c;
}
