"""jaxloss: loss functions for training computer-vision models in JAX.

Every loss is a pure function ``loss(predictions, targets, *, hyperparameters,
where=None, weights=None, reduction="mean")`` that works under ``jit``,
``vmap`` and ``grad``. See ``jaxloss.names()`` for the catalogue.

Every public name is re-exported here explicitly (``from jaxloss.family import
name as name``) so that type checkers see each loss's signature. The VGG-16
feature extractor (``vgg16_features``, ``VGG16Features``) and the LPIPS
networks (``lpips_network``, ``LPIPSNetwork``) need Flax, an optional
dependency (``pip install 'jaxloss[flax]'``): they are imported on first
attribute access and are not part of ``__all__``, so ``from jaxloss import *``
works without Flax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jaxloss import aggregate as aggregate
from jaxloss import classification as classification
from jaxloss import compose as compose
from jaxloss import detection as detection
from jaxloss import distance as distance
from jaxloss import geometry as geometry
from jaxloss import image as image
from jaxloss import keypoint as keypoint
from jaxloss import metric as metric
from jaxloss import registry as registry
from jaxloss import regression as regression
from jaxloss import segmentation as segmentation
from jaxloss import weighting as weighting
from jaxloss.classification import asymmetric_loss as asymmetric_loss
from jaxloss.classification import (
    balanced_binary_cross_entropy_loss as balanced_binary_cross_entropy_loss,
)
from jaxloss.classification import bi_tempered_logistic_loss as bi_tempered_logistic_loss
from jaxloss.classification import binary_cross_entropy_loss as binary_cross_entropy_loss
from jaxloss.classification import class_balanced_weights as class_balanced_weights
from jaxloss.classification import cosine_distance_loss as cosine_distance_loss
from jaxloss.classification import cross_entropy_loss as cross_entropy_loss
from jaxloss.classification import ctc_loss as ctc_loss
from jaxloss.classification import distillation_loss as distillation_loss
from jaxloss.classification import focal_loss as focal_loss
from jaxloss.classification import generalized_cross_entropy_loss as generalized_cross_entropy_loss
from jaxloss.classification import hinge_loss as hinge_loss
from jaxloss.classification import js_divergence_loss as js_divergence_loss
from jaxloss.classification import jsd_consistency_loss as jsd_consistency_loss
from jaxloss.classification import kl_divergence_loss as kl_divergence_loss
from jaxloss.classification import ldam_loss as ldam_loss
from jaxloss.classification import logit_adjusted_loss as logit_adjusted_loss
from jaxloss.classification import multiclass_hinge_loss as multiclass_hinge_loss
from jaxloss.classification import ohem_cross_entropy_loss as ohem_cross_entropy_loss
from jaxloss.classification import poly1_cross_entropy_loss as poly1_cross_entropy_loss
from jaxloss.classification import seesaw_loss as seesaw_loss
from jaxloss.classification import sigmoid_focal_loss as sigmoid_focal_loss
from jaxloss.classification import squared_hinge_loss as squared_hinge_loss
from jaxloss.classification import symmetric_cross_entropy_loss as symmetric_cross_entropy_loss
from jaxloss.compose import combine as combine
from jaxloss.compose import deep_supervision as deep_supervision
from jaxloss.compose import objective as objective
from jaxloss.compose import term as term
from jaxloss.detection import box_area as box_area
from jaxloss.detection import box_convert as box_convert
from jaxloss.detection import box_iou as box_iou
from jaxloss.detection import ciou_loss as ciou_loss
from jaxloss.detection import detr_criterion as detr_criterion
from jaxloss.detection import diou_loss as diou_loss
from jaxloss.detection import distribution_expectation as distribution_expectation
from jaxloss.detection import distribution_focal_loss as distribution_focal_loss
from jaxloss.detection import eiou_loss as eiou_loss
from jaxloss.detection import gaussian_focal_loss as gaussian_focal_loss
from jaxloss.detection import generalized_box_iou as generalized_box_iou
from jaxloss.detection import giou_loss as giou_loss
from jaxloss.detection import hungarian_match as hungarian_match
from jaxloss.detection import iou_loss as iou_loss
from jaxloss.detection import kld_rotated_loss as kld_rotated_loss
from jaxloss.detection import linear_sum_assignment as linear_sum_assignment
from jaxloss.detection import mask_rcnn_mask_loss as mask_rcnn_mask_loss
from jaxloss.detection import probiou_loss as probiou_loss
from jaxloss.detection import quality_focal_loss as quality_focal_loss
from jaxloss.detection import siou_loss as siou_loss
from jaxloss.detection import ssd_multibox_loss as ssd_multibox_loss
from jaxloss.detection import task_aligned_assign as task_aligned_assign
from jaxloss.detection import varifocal_loss as varifocal_loss
from jaxloss.detection import yolo_criterion as yolo_criterion
from jaxloss.distance import distance_transform as distance_transform
from jaxloss.distance import signed_distance_map as signed_distance_map
from jaxloss.geometry import bending_energy_loss as bending_energy_loss
from jaxloss.geometry import edge_aware_smoothness_loss as edge_aware_smoothness_loss
from jaxloss.geometry import endpoint_error_loss as endpoint_error_loss
from jaxloss.geometry import lncc_loss as lncc_loss
from jaxloss.geometry import mutual_information_loss as mutual_information_loss
from jaxloss.geometry import scale_shift_invariant_loss as scale_shift_invariant_loss
from jaxloss.geometry import silog_loss as silog_loss
from jaxloss.image import diffusion_loss as diffusion_loss
from jaxloss.image import gan_discriminator_loss as gan_discriminator_loss
from jaxloss.image import gan_generator_loss as gan_generator_loss
from jaxloss.image import gaussian_kl_loss as gaussian_kl_loss
from jaxloss.image import gradient_penalty as gradient_penalty
from jaxloss.image import gram_matrix as gram_matrix
from jaxloss.image import lpips_loss as lpips_loss
from jaxloss.image import ms_ssim_loss as ms_ssim_loss
from jaxloss.image import perceptual_loss as perceptual_loss
from jaxloss.image import psnr_loss as psnr_loss
from jaxloss.image import r1_penalty as r1_penalty
from jaxloss.image import ssim_loss as ssim_loss
from jaxloss.image import style_loss as style_loss
from jaxloss.image import total_variation_loss as total_variation_loss
from jaxloss.keypoint import adaptive_wing_loss as adaptive_wing_loss
from jaxloss.keypoint import decode_heatmaps as decode_heatmaps
from jaxloss.keypoint import decode_simcc as decode_simcc
from jaxloss.keypoint import gaussian_heatmaps as gaussian_heatmaps
from jaxloss.keypoint import heatmap_mse_loss as heatmap_mse_loss
from jaxloss.keypoint import mpjpe_loss as mpjpe_loss
from jaxloss.keypoint import oks_loss as oks_loss
from jaxloss.keypoint import simcc_loss as simcc_loss
from jaxloss.keypoint import simcc_targets as simcc_targets
from jaxloss.keypoint import soft_wing_loss as soft_wing_loss
from jaxloss.keypoint import wing_loss as wing_loss
from jaxloss.metric import CrossBatchMemory as CrossBatchMemory
from jaxloss.metric import arcface_loss as arcface_loss
from jaxloss.metric import barlow_twins_loss as barlow_twins_loss
from jaxloss.metric import batch_triplet_loss as batch_triplet_loss
from jaxloss.metric import byol_loss as byol_loss
from jaxloss.metric import center_loss as center_loss
from jaxloss.metric import circle_loss as circle_loss
from jaxloss.metric import clip_loss as clip_loss
from jaxloss.metric import contrastive_loss as contrastive_loss
from jaxloss.metric import cosface_loss as cosface_loss
from jaxloss.metric import fast_ap_loss as fast_ap_loss
from jaxloss.metric import info_nce_loss as info_nce_loss
from jaxloss.metric import lifted_structure_loss as lifted_structure_loss
from jaxloss.metric import multi_similarity_loss as multi_similarity_loss
from jaxloss.metric import normalized_softmax_loss as normalized_softmax_loss
from jaxloss.metric import npair_loss as npair_loss
from jaxloss.metric import ntxent_loss as ntxent_loss
from jaxloss.metric import proxy_anchor_loss as proxy_anchor_loss
from jaxloss.metric import proxy_nca_loss as proxy_nca_loss
from jaxloss.metric import siglip_loss as siglip_loss
from jaxloss.metric import simsiam_loss as simsiam_loss
from jaxloss.metric import soft_triple_loss as soft_triple_loss
from jaxloss.metric import sphereface_loss as sphereface_loss
from jaxloss.metric import subcenter_arcface_loss as subcenter_arcface_loss
from jaxloss.metric import supcon_loss as supcon_loss
from jaxloss.metric import triplet_margin_loss as triplet_margin_loss
from jaxloss.metric import vicreg_loss as vicreg_loss
from jaxloss.registry import get as get
from jaxloss.registry import names as names
from jaxloss.registry import register as register
from jaxloss.registry import unregister as unregister
from jaxloss.regression import cauchy_loss as cauchy_loss
from jaxloss.regression import charbonnier_loss as charbonnier_loss
from jaxloss.regression import gaussian_nll_loss as gaussian_nll_loss
from jaxloss.regression import geman_mcclure_loss as geman_mcclure_loss
from jaxloss.regression import huber_loss as huber_loss
from jaxloss.regression import log_cosh_loss as log_cosh_loss
from jaxloss.regression import mae_loss as mae_loss
from jaxloss.regression import mse_loss as mse_loss
from jaxloss.regression import quantile_loss as quantile_loss
from jaxloss.regression import robust_loss as robust_loss
from jaxloss.regression import smooth_l1_loss as smooth_l1_loss
from jaxloss.regression import welsch_loss as welsch_loss
from jaxloss.segmentation import boundary_loss as boundary_loss
from jaxloss.segmentation import cldice_loss as cldice_loss
from jaxloss.segmentation import dice_ce_loss as dice_ce_loss
from jaxloss.segmentation import dice_focal_loss as dice_focal_loss
from jaxloss.segmentation import dice_loss as dice_loss
from jaxloss.segmentation import focal_tversky_loss as focal_tversky_loss
from jaxloss.segmentation import generalized_dice_loss as generalized_dice_loss
from jaxloss.segmentation import hausdorff_dt_loss as hausdorff_dt_loss
from jaxloss.segmentation import jaccard_loss as jaccard_loss
from jaxloss.segmentation import lovasz_hinge_loss as lovasz_hinge_loss
from jaxloss.segmentation import lovasz_softmax_loss as lovasz_softmax_loss
from jaxloss.segmentation import tversky_loss as tversky_loss

if TYPE_CHECKING:  # imported lazily at run time (needs Flax): see __getattr__
    from jaxloss.image.lpips_net import LPIPSNetwork as LPIPSNetwork
    from jaxloss.image.lpips_net import lpips_network as lpips_network
    from jaxloss.image.vgg import VGG16Features as VGG16Features
    from jaxloss.image.vgg import vgg16_features as vgg16_features

__version__ = "0.1.0"

__all__ = [
    "adaptive_wing_loss",
    "aggregate",
    "arcface_loss",
    "asymmetric_loss",
    "balanced_binary_cross_entropy_loss",
    "barlow_twins_loss",
    "batch_triplet_loss",
    "bending_energy_loss",
    "bi_tempered_logistic_loss",
    "binary_cross_entropy_loss",
    "boundary_loss",
    "box_area",
    "box_convert",
    "box_iou",
    "byol_loss",
    "cauchy_loss",
    "center_loss",
    "charbonnier_loss",
    "ciou_loss",
    "circle_loss",
    "class_balanced_weights",
    "cldice_loss",
    "clip_loss",
    "combine",
    "compose",
    "contrastive_loss",
    "cosface_loss",
    "cosine_distance_loss",
    "cross_entropy_loss",
    "CrossBatchMemory",
    "ctc_loss",
    "decode_heatmaps",
    "decode_simcc",
    "deep_supervision",
    "detr_criterion",
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_loss",
    "diffusion_loss",
    "diou_loss",
    "distance_transform",
    "distillation_loss",
    "distribution_expectation",
    "distribution_focal_loss",
    "edge_aware_smoothness_loss",
    "eiou_loss",
    "endpoint_error_loss",
    "fast_ap_loss",
    "focal_loss",
    "focal_tversky_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gaussian_focal_loss",
    "gaussian_heatmaps",
    "gaussian_kl_loss",
    "gaussian_nll_loss",
    "geman_mcclure_loss",
    "generalized_box_iou",
    "generalized_cross_entropy_loss",
    "generalized_dice_loss",
    "geometry",
    "get",
    "giou_loss",
    "gradient_penalty",
    "gram_matrix",
    "hausdorff_dt_loss",
    "heatmap_mse_loss",
    "hinge_loss",
    "huber_loss",
    "hungarian_match",
    "info_nce_loss",
    "iou_loss",
    "jaccard_loss",
    "js_divergence_loss",
    "jsd_consistency_loss",
    "keypoint",
    "kl_divergence_loss",
    "kld_rotated_loss",
    "ldam_loss",
    "lifted_structure_loss",
    "linear_sum_assignment",
    "lncc_loss",
    "log_cosh_loss",
    "logit_adjusted_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "lpips_loss",
    "mae_loss",
    "mask_rcnn_mask_loss",
    "mpjpe_loss",
    "ms_ssim_loss",
    "mse_loss",
    "multi_similarity_loss",
    "multiclass_hinge_loss",
    "mutual_information_loss",
    "names",
    "normalized_softmax_loss",
    "npair_loss",
    "ntxent_loss",
    "objective",
    "ohem_cross_entropy_loss",
    "oks_loss",
    "perceptual_loss",
    "poly1_cross_entropy_loss",
    "probiou_loss",
    "proxy_anchor_loss",
    "proxy_nca_loss",
    "psnr_loss",
    "quality_focal_loss",
    "quantile_loss",
    "r1_penalty",
    "register",
    "registry",
    "robust_loss",
    "scale_shift_invariant_loss",
    "seesaw_loss",
    "siglip_loss",
    "sigmoid_focal_loss",
    "signed_distance_map",
    "silog_loss",
    "simcc_loss",
    "simcc_targets",
    "simsiam_loss",
    "siou_loss",
    "smooth_l1_loss",
    "soft_triple_loss",
    "soft_wing_loss",
    "sphereface_loss",
    "squared_hinge_loss",
    "ssd_multibox_loss",
    "ssim_loss",
    "style_loss",
    "subcenter_arcface_loss",
    "supcon_loss",
    "symmetric_cross_entropy_loss",
    "task_aligned_assign",
    "term",
    "total_variation_loss",
    "triplet_margin_loss",
    "tversky_loss",
    "unregister",
    "varifocal_loss",
    "vicreg_loss",
    "weighting",
    "welsch_loss",
    "wing_loss",
    "yolo_criterion",
]

# Names that need an optional dependency: importable on first access, not in __all__.
_LAZY = {"vgg16_features": "jaxloss.image.vgg", "VGG16Features": "jaxloss.image.vgg",
         "lpips_network": "jaxloss.image.lpips_net", "LPIPSNetwork": "jaxloss.image.lpips_net"}


def __getattr__(name: str) -> Any:
    # The VGG-16 feature extractor needs Flax, which jaxloss does not require:
    # import it on first use only. Without Flax the error is an AttributeError (so that
    # hasattr(jaxloss, "vgg16_features") is False) whose message names the extra to install.
    if name in _LAZY:
        import importlib

        try:
            module = importlib.import_module(_LAZY[name])
        except ImportError as error:
            raise AttributeError(str(error)) from error
        return getattr(module, name)
    raise AttributeError(f"module 'jaxloss' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
