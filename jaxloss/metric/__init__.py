"""Metric-learning and self-supervised losses.

Conventions: embeddings are float ``(N, d)`` with integer labels ``(N,)``;
class matrices of the margin-softmax losses are in the Flax kernel layout
``(d, C)``. Losses that use the whole batch take ``axis_name=None``: inside
``shard_map``/``pmap`` they gather the global batch, so a sharded call equals
the single-device call on the global batch. The all-pairs and many-class
losses take ``block_size=None``: with a block size they never hold the full
``N x N`` (or ``N x C``) matrix (a blockwise online log-sum-exp in a
checkpointed scan), so memory grows as ``O(N d)``.

Modules: ``pairs`` (explicit pairs and triplets, center loss), ``batch``
(batch-wide pair losses from labels: mined triplets, N-pair, circle,
multi-similarity), ``margin`` (margin-softmax losses), ``contrastive``
(NT-Xent/InfoNCE, SupCon, CLIP, SigLIP) and ``siamese`` (BYOL, SimSiam,
Barlow Twins, VICReg); ``_common`` holds their shared private helpers.
"""

from jaxloss.metric import batch as batch
from jaxloss.metric import contrastive as contrastive
from jaxloss.metric import margin as margin
from jaxloss.metric import memory as memory
from jaxloss.metric import pairs as pairs
from jaxloss.metric import proxies as proxies
from jaxloss.metric import ranking as ranking
from jaxloss.metric import siamese as siamese
from jaxloss.metric.batch import batch_triplet_loss as batch_triplet_loss
from jaxloss.metric.batch import circle_loss as circle_loss
from jaxloss.metric.batch import multi_similarity_loss as multi_similarity_loss
from jaxloss.metric.batch import npair_loss as npair_loss
from jaxloss.metric.contrastive import clip_loss as clip_loss
from jaxloss.metric.contrastive import info_nce_loss as info_nce_loss
from jaxloss.metric.contrastive import ntxent_loss as ntxent_loss
from jaxloss.metric.contrastive import siglip_loss as siglip_loss
from jaxloss.metric.contrastive import supcon_loss as supcon_loss
from jaxloss.metric.margin import arcface_loss as arcface_loss
from jaxloss.metric.margin import cosface_loss as cosface_loss
from jaxloss.metric.margin import sphereface_loss as sphereface_loss
from jaxloss.metric.margin import subcenter_arcface_loss as subcenter_arcface_loss
from jaxloss.metric.memory import CrossBatchMemory as CrossBatchMemory
from jaxloss.metric.pairs import center_loss as center_loss
from jaxloss.metric.pairs import contrastive_loss as contrastive_loss
from jaxloss.metric.pairs import triplet_margin_loss as triplet_margin_loss
from jaxloss.metric.proxies import normalized_softmax_loss as normalized_softmax_loss
from jaxloss.metric.proxies import proxy_anchor_loss as proxy_anchor_loss
from jaxloss.metric.proxies import proxy_nca_loss as proxy_nca_loss
from jaxloss.metric.proxies import soft_triple_loss as soft_triple_loss
from jaxloss.metric.ranking import fast_ap_loss as fast_ap_loss
from jaxloss.metric.ranking import lifted_structure_loss as lifted_structure_loss
from jaxloss.metric.siamese import barlow_twins_loss as barlow_twins_loss
from jaxloss.metric.siamese import byol_loss as byol_loss
from jaxloss.metric.siamese import simsiam_loss as simsiam_loss
from jaxloss.metric.siamese import vicreg_loss as vicreg_loss

__all__ = [
    "arcface_loss",
    "barlow_twins_loss",
    "batch_triplet_loss",
    "byol_loss",
    "center_loss",
    "circle_loss",
    "clip_loss",
    "contrastive_loss",
    "cosface_loss",
    "CrossBatchMemory",
    "fast_ap_loss",
    "info_nce_loss",
    "lifted_structure_loss",
    "multi_similarity_loss",
    "normalized_softmax_loss",
    "npair_loss",
    "ntxent_loss",
    "proxy_anchor_loss",
    "proxy_nca_loss",
    "siglip_loss",
    "simsiam_loss",
    "soft_triple_loss",
    "sphereface_loss",
    "subcenter_arcface_loss",
    "supcon_loss",
    "triplet_margin_loss",
    "vicreg_loss",
]
