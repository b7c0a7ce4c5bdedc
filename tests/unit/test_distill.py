"""genline.distill without training a teacher: the student's shape, the teacher's marks and the
adoption rule both ways."""

from __future__ import annotations

import pytest
import torch

from genline.distill import DistillConfig, adoption, distill, student_config, teacher_marks
from genline.model import Generator, GeneratorConfig

TEACHER = {"fd_ratio": 1.0, "conditional_accuracy_ratio": 1.0, "diversity_ratio": 0.9}


def test_adopted_when_within_five_percent_or_better():
    ok, reasons = adoption(TEACHER, {"fd_ratio": 1.04, "conditional_accuracy_ratio": 1.01,
                                     "diversity_ratio": 0.87}, True)
    assert ok and reasons == []


@pytest.mark.parametrize(("student", "gate", "why"), [
    ({"fd_ratio": 1.06, "conditional_accuracy_ratio": 1.0, "diversity_ratio": 0.9}, True,
     "fd_ratio is 6.0% worse"),
    ({"fd_ratio": 1.0, "conditional_accuracy_ratio": 0.94, "diversity_ratio": 0.9}, True,
     "conditional_accuracy_ratio is 6.0% worse"),
    ({"fd_ratio": 1.0, "conditional_accuracy_ratio": 1.0}, True, "diversity_ratio: missing"),
    (dict(TEACHER), False, "fails the quality gate"),
])
def test_refused_with_the_metric_that_lost(student, gate, why):
    ok, reasons = adoption(TEACHER, student, gate)
    assert not ok and any(why in r for r in reasons), reasons


def test_student_is_the_teachers_architecture_with_few_unguided_steps():
    teacher = Generator(GeneratorConfig(hidden=32, depth=1))
    s = student_config(teacher, 2)
    assert (s.sample_steps, s.solver, s.guidance, s.evaluations) == (2, "euler", 0.0, 2)
    assert teacher.cfg.evaluations == 40 and s.latent_dim == teacher.cfg.latent_dim


def test_teacher_marks_are_its_sampler_at_the_student_times():
    torch.manual_seed(0)
    teacher = Generator(GeneratorConfig(hidden=32, depth=1)).eval()
    for p in teacher.net.out.parameters():  # a non-zero field
        torch.nn.init.normal_(p, std=0.1)
    y, z = torch.arange(6) % 10, torch.randn(6, 64)
    marks = teacher_marks(teacher, y, z, 2, chunk=4)
    with torch.no_grad():
        assert torch.allclose(marks[0], teacher.sample_flow(y, z, until_step=5), atol=1e-6)
        assert torch.allclose(marks[1], teacher.sample_flow(y, z), atol=1e-6)
    with pytest.raises(ValueError, match="evenly"):
        teacher_marks(teacher, y, z, 3)


def test_distill_runs_and_moves_towards_the_teacher():
    torch.manual_seed(0)
    teacher = Generator(GeneratorConfig(hidden=32, depth=1)).eval()
    for p in teacher.net.out.parameters():
        torch.nn.init.normal_(p, std=0.1)
    cfg = DistillConfig(iterations=60, pool=512, batch_size=64, lr=3e-3)
    student, info = distill(teacher, cfg)
    assert info["iterations_run"] == 60 and info["student_evaluations"] == 2
    y, z = torch.arange(64) % 10, torch.randn(64, 64)
    with torch.no_grad():
        target = teacher(y, z)
        start = Generator(student_config(teacher, 2))
        start.load_state_dict(teacher.state_dict())
        before = float((start(y, z) - target).pow(2).mean())
        after = float((student(y, z) - target).pow(2).mean())
    assert after < before


def test_a_narrower_student_starts_fresh_and_keeps_the_teachers_pca_space():
    torch.manual_seed(0)
    teacher = Generator(GeneratorConfig(num_classes=2, image_size=6, hidden=32, depth=1,
                                        space="pca", components=4, tail=6, class_tail=True))
    teacher.fit_pca(torch.rand(40, 36) * 2 - 1, torch.arange(40) % 2)
    student, info = distill(teacher, DistillConfig(iterations=5, pool=64, batch_size=32,
                                                   hidden=16))
    assert student.cfg.hidden == 16 and student.cfg.sample_steps == 2
    for name in ("pca_basis", "pca_mean", "pca_std", "tail_mean", "tail_std"):
        assert torch.equal(getattr(student, name), getattr(teacher, name))
    with pytest.raises(ValueError, match="hidden"):
        DistillConfig(hidden=2)


@pytest.mark.parametrize("solver,guidance,steps,space", [("euler", 0.0, 2, "pixel"),
                                                         ("midpoint", 0.5, 3, "pixel"),
                                                         ("euler", 0.0, 2, "pca")])
def test_folded_conditioning_matches_and_exports_smaller(tmp_path, solver, guidance, steps,
                                                         space):
    """Generator.folded tabulates the conditioning at the sampler's fixed times: same images
    (guided or not, Euler or midpoint), a graph without the time MLP, parity against the
    unfolded model."""
    import onnx

    from genline.export import export_generator

    torch.manual_seed(0)
    pca = {"space": "pca", "components": 6, "tail": 4, "class_tail": True} if space == "pca" \
        else {}
    g = Generator(GeneratorConfig(num_classes=3, image_size=4, hidden=32, depth=2,
                                  sample_steps=steps, solver=solver, guidance=guidance, **pca))
    if pca:  # the production student: pca space with a per-class tail
        g.fit_pca(torch.rand(60, 16) * 2 - 1, torch.arange(60) % 3)
    for p in g.parameters():  # the zero-initialised output layer would make every image equal
        p.data.add_(0.1 * torch.randn_like(p))
    folded = g.folded()
    assert sorted(folded._folded) == g.sampler_times()
    assert len(g.sampler_times()) == steps * (2 if solver == "midpoint" else 1)
    labels, z = torch.tensor([0, 1, 2, 1]), torch.randn(4, g.cfg.latent_dim)
    with torch.no_grad():
        assert torch.allclose(folded(labels, z), g(labels, z), atol=1e-5)
        assert not torch.allclose(g(labels, z), g(labels.flip(0), z), atol=1e-3)
    assert g._folded is None  # the original is untouched
    plain = export_generator(g, tmp_path / "plain.onnx")
    small = export_generator(folded, tmp_path / "folded.onnx", reference=g)
    assert small["parity_max_abs_diff"] <= 1e-4
    assert small["nodes_simplified"]["nodes"] < plain["nodes_simplified"]["nodes"]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "folded.onnx")).graph.node}
    assert "Sin" not in ops and "Cos" not in ops  # no time embedding left
