"""Native ops of negrec (``torch.ops.negrec``) and their Python functionals."""

from negrec.ops.fused_loss import fused_loss
from negrec.ops.reference import fused_loss_reference

__all__ = ["fused_loss", "fused_loss_reference"]
