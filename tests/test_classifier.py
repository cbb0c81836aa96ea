"""The kernelized classifier (a reconstruction) and its reduction to the release's heads."""

import pytest
import torch
from torch import nn

from lgd_tutorial.models import KernelizedClassifier, build_model


def test_linear_kernel_equals_two_linear_heads_summed_given_the_same_weights():
    torch.manual_seed(0)
    classifier = KernelizedClassifier(32, 5, kernel="linear").eval()
    local_head, global_head = nn.Linear(32, 5), nn.Linear(32, 5)
    local_head.load_state_dict({"weight": classifier.local_head.weight, "bias": classifier.local_head.bias})
    global_head.load_state_dict({"weight": classifier.global_head.weight, "bias": classifier.global_head.bias})
    with torch.no_grad():
        nn.init.normal_(classifier.local_head.bias)
        local_head.bias.copy_(classifier.local_head.bias)
    local, global_ = torch.randn(3, 32, 2, 4, 4), torch.randn(3, 32)
    with torch.no_grad():
        release = local_head(local.mean((2, 3, 4))) + global_head(global_)
        ours = classifier(local, global_)["logits"]
    torch.testing.assert_close(ours, release)


def test_dropout_follows_the_release_only_in_training():
    classifier = KernelizedClassifier(16, 3, dropout=0.5)
    local, global_ = torch.randn(4, 16, 1, 2, 2), torch.randn(4, 16)
    classifier.train()
    assert not torch.equal(classifier(local, global_)["logits"], classifier(local, global_)["logits"])
    classifier.eval()
    assert torch.equal(classifier(local, global_)["logits"], classifier(local, global_)["logits"])


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_evidence_map_averages_to_the_local_score(kernel):
    torch.manual_seed(0)
    classifier = KernelizedClassifier(8, 4, kernel=kernel).eval()
    local, global_ = torch.randn(2, 8, 2, 3, 3), torch.randn(2, 8)
    with torch.no_grad():
        heads, evidence = classifier(local, global_), classifier.evidence(local)
    assert evidence.shape == (2, 4, 2, 3, 3)
    torch.testing.assert_close(evidence.mean((2, 3, 4)) + classifier.local_head.bias, heads["local_logits"])
    torch.testing.assert_close(heads["logits"], heads["local_logits"] + heads["global_logits"])


def test_gaussian_kernel_peaks_at_the_class_template_and_learns_its_bandwidth():
    classifier = KernelizedClassifier(6, 3, kernel="gaussian", use_global=False).eval()
    template = classifier.local_head.weight[1].detach()
    at_template = template[None, :, None, None, None].expand(1, 6, 1, 2, 2)
    far_away = at_template + 10.0
    with torch.no_grad():
        near, far = classifier.evidence(at_template), classifier.evidence(far_away)
    scale = classifier.local_head.log_scale.exp()
    torch.testing.assert_close(near[0, 1], scale.expand(1, 2, 2))        # k(u, u) = alpha
    assert (far[0, 1] < near[0, 1]).all()
    loss = classifier(far_away, None)["logits"].sum()
    loss.backward()
    assert classifier.local_head.log_bandwidth.grad is not None


def test_model_evidence_map_covers_space_time():
    model = build_model("lgd3d_tiny", 6).eval()
    with torch.no_grad():
        local, global_ = model.forward_features(torch.randn(1, 3, 8, 64, 64))
        logits, evidence = model.forward_head(local, global_)["logits"], model.classifier.evidence(local)
    assert evidence.shape == (1, 6, *local.shape[2:])
    assert logits.shape == (1, 6)


def test_classifier_without_global_path_refuses_to_be_asked_for_one_and_vice_versa():
    with pytest.raises(ValueError, match="global vector"):
        KernelizedClassifier(4, 2)(torch.randn(1, 4, 1, 1, 1), None)
    with pytest.raises(ValueError, match="dropout"):
        KernelizedClassifier(4, 2, dropout=1.5)
