"""rtn_int8: msModelSlim's data-free int8 weight quantizer, as torch operations.

msModelSlim @3de0a3c quantizes a linear's weight per output channel, symmetric,
"minmax": msmodelslim/core/quantizer/impl/minmax.py L211-235 takes the amin/amax of
each output row (its observer on weight.T with dim [0],
msmodelslim/core/observer/minmax.py L64-75), msmodelslim/ir/api/impl/
int_quantization.py L41-97 makes the scale (min with 0, max with 0, the larger
magnitude / 127, floored at float32's epsilon cast to the weight's type) and
L130-157 the codes ((w / scale + offset).round_(), clamp_(-128, 127), int8); the
saver writes the scale as float32 [out, 1] (save/ascendv1.py L337-346).  rtn_int8
performs the same torch operations in the same order, each on tensors of the
weight's own type, so every operation is rounded to that type as torch's CPU
kernels round it.  One exception, forced by torch 1.13: its CPU has no round() for
float16, so a float16 quotient is rounded to an integer in float32; that step is
exact (the quotient is a float16 value, its nearest integer is representable).
"""
import torch


def rtn_int8(w):
    """q (int8 [out, in]) and scale (float32 [out, 1]) of weight w [out, in], in w's dtype."""
    wt = w.t()
    lo = torch.amin(wt, dim=[0], keepdim=False)
    hi = torch.amax(wt, dim=[0], keepdim=False)
    lo = torch.min(lo, torch.zeros_like(lo))
    hi = torch.max(hi, torch.zeros_like(hi))
    eps = torch.tensor([torch.finfo(torch.float32).eps]).type_as(lo)
    scale = torch.max(torch.max(-lo, hi) / float(127), eps)
    offset = torch.tensor(0.0).type_as(lo).expand(scale.shape)
    x = wt / scale + offset
    if x.dtype == torch.float16:   # torch 1.13 CPU: no round() for Half; exact in float
        x = x.float()
    q = x.round_().clamp_(min=-128, max=127).to(torch.int8)
    return q.t().contiguous(), scale.unsqueeze(-1).to(torch.float32)
