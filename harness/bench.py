"""``ba2m-bench bench``: speed and memory measured side by side in one process.

Each comparison times both sides alternately after a warm-up and reports the median of
``repeats`` timings, so drift on a noisy machine hits both sides alike. Nothing here is
asserted in tests; the ratios are for the reader (and the JSON) to judge.

The step part also times BA²M with each other ``gsa_impl`` (``ba2m_step_ratio_by_impl``) and
measures the memory of one BA²M module's forward + backward on ImageNet-after-stage-1 maps
(:data:`GSA_MODULE_SHAPE`) for each ``gsa_impl``, on the CPU, deterministically: the peak of
tensor memory allocated (torch.profiler's allocation events) and the bytes of the tensors
saved for backward (``saved_tensors_hooks``), with each impl's ratio to ``"pooled"``.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from harness.training.devicedata import DeviceBatches
from harness.paths import inside
from harness.training.loop import Hooks, autocast, train_epoch
from models import build_model
from models.registry import INPUT_SIZE

CIFAR_MEAN, CIFAR_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


@dataclass
class BenchResult:
    device: str
    torch_version: str
    threads: int
    arch: str
    dataset: str
    batch: int
    repeats: int
    baseline_step_s: float | None = None
    ba2m_step_s: float | None = None
    ba2m_step_ratio: float | None = None
    baseline_peak_mib: float | None = None
    ba2m_peak_mib: float | None = None
    ba2m_memory_ratio: float | None = None
    loop_arch: str | None = None
    harness_loop_step_s: float | None = None
    reference_loop_step_s: float | None = None
    loop_ratio: float | None = None
    device_pipeline_img_s: float | None = None
    dataloader_img_s: float | None = None
    pipeline_ratio: float | None = None
    count_seconds: float | None = None
    ba2m_step_ratio_by_impl: dict[str, float] = field(default_factory=dict)
    gsa_module_peak_mib: dict[str, float] = field(default_factory=dict)
    gsa_module_saved_mib: dict[str, float] = field(default_factory=dict)
    gsa_module_peak_ratio: dict[str, float] = field(default_factory=dict)
    gpu: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_pair(a: Callable[[], None], b: Callable[[], None], repeats: int,
                 device: torch.device, warmup: int = 2) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b``, timed alternately."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def _median_all(fns: list[Callable[[], None]], repeats: int, device: torch.device,
                warmup: int = 2) -> list[float]:
    """Median seconds of each of ``fns``, timed in turn within each repeat."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _stepper(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             device: torch.device) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp = device.type == "cuda"

    def step() -> None:
        with autocast(device, amp):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _model(arch: str, form: str, classes: int, device: torch.device, **kw: Any) -> nn.Module:
    m = build_model(arch, form=form, num_classes=classes, **kw).to(device).train()
    return m.to(memory_format=torch.channels_last) if device.type == "cuda" else m


def _peak(step: Callable[[], None], device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def bench_step(res: BenchResult, device: torch.device, form: str, classes: int,
               other_impls: tuple[str, ...] = ("sdpa",)) -> None:
    """1. BA²M / baseline train-step time (and peak memory on GPU); BA²M with the default
    ``gsa_impl`` and with each of ``other_impls``, all timed in turn in one loop."""
    size = INPUT_SIZE[form]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(res.batch, 3, size, size, generator=g).to(device)
    y = torch.randint(0, classes, (res.batch,), generator=g).to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    base = _stepper(_model(res.arch, form, classes, device), x, y, device)
    ba2m = _stepper(_model(res.arch, form, classes, device, attention="ba2m"), x, y, device)
    default = _default_gsa_impl()
    other_impls = tuple(i for i in other_impls if i != default)
    others = [_stepper(_model(res.arch, form, classes, device, attention="ba2m", gsa_impl=impl),
                       x, y, device) for impl in other_impls]
    times = _median_all([base, ba2m, *others], res.repeats, device)
    res.baseline_step_s, res.ba2m_step_s = times[0], times[1]
    res.ba2m_step_ratio = res.ba2m_step_s / res.baseline_step_s
    res.ba2m_step_ratio_by_impl = {
        default: res.ba2m_step_ratio,
        **{impl: t / res.baseline_step_s for impl, t in zip(other_impls, times[2:])}}
    res.baseline_peak_mib, res.ba2m_peak_mib = _peak(base, device), _peak(ba2m, device)
    if res.baseline_peak_mib:
        res.ba2m_memory_ratio = res.ba2m_peak_mib / res.baseline_peak_mib  # type: ignore[operator]


#: One BA²M module's input in the memory comparison: ImageNet ResNet-50 after stage 1
#: (256 x 56 x 56, HW = 3136), batch 8.
GSA_MODULE_SHAPE = (8, 256, 56, 56)
GSA_IMPLS = ("pooled", "sdpa", "matmul")


def _default_gsa_impl() -> str:
    import inspect

    from models.ba2m import BA2M

    return str(inspect.signature(BA2M).parameters["gsa_impl"].default)


def memory_of(fn: Callable[[], Any]) -> tuple[int, int]:
    """(peak, saved) bytes of one run of ``fn`` on the CPU, both from sizes, not timings:

    - peak: the highest level of tensor memory allocated while ``fn`` runs, above the level
      when it started (the running sum of torch.profiler's allocation events);
    - saved: the bytes of the distinct storages autograd saves for backward
      (``saved_tensors_hooks``; each storage once, parameters and inputs included).
    """
    from torch._C._profiler import _EventType

    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen[(st.data_ptr(), st.nbytes())] = st.nbytes()
        return t

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with saved_tensors_hooks(pack, lambda t: t):
            fn()
    sizes: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())  # type: ignore[union-attr]
    while stack:
        e = stack.pop()
        if e.tag == _EventType.Allocation:
            sizes.append((e.start_time_ns, e.extra_fields.alloc_size))
        stack.extend(e.children)
    level = peak = 0
    for _, n in sorted(sizes):
        level += n
        peak = max(peak, level)
    return peak, sum(seen.values())


def gsa_module_step(impl: str, shape: tuple[int, ...] = GSA_MODULE_SHAPE
                    ) -> Callable[[], None]:
    """Forward + backward of one BA²M module (all branches, training mode) with ``impl``,
    on a fixed input that requires a gradient, as inside a network."""
    from models.ba2m import BA2M

    torch.manual_seed(0)
    module = BA2M(shape[1], gsa_impl=impl).train()
    x = torch.randn(shape, requires_grad=True)
    seed = torch.randn(shape)

    def step() -> None:
        (module(x) * seed).sum().backward()
        x.grad = None
        module.zero_grad(set_to_none=True)

    return step


def bench_gsa_memory(res: BenchResult, impls: tuple[str, ...] = GSA_IMPLS,
                     shape: tuple[int, ...] = GSA_MODULE_SHAPE) -> None:
    """1b. Peak memory and saved-for-backward bytes of one BA²M module per ``gsa_impl``
    (CPU), with each impl's ratio to ``"pooled"``."""
    for impl in impls:
        peak, saved = memory_of(gsa_module_step(impl, shape))
        res.gsa_module_peak_mib[impl] = peak / 2**20
        res.gsa_module_saved_mib[impl] = saved / 2**20
    ref = res.gsa_module_peak_mib.get("pooled")
    if ref:
        res.gsa_module_peak_ratio = {i: m / ref for i, m in res.gsa_module_peak_mib.items()}


def _uint8_cifar(n: int) -> tuple[torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g),
            torch.randint(0, 100, (n,), generator=g).tolist())


LOOP_ARCH = "resnet20"  # a fast model: the loop's own overhead weighs most there


def bench_loop(res: BenchResult, device: torch.device, steps: int = 8) -> None:
    """2. The harness's epoch loop / a plain loop over the same model and in-memory data
    (CIFAR ResNet-20, the stricter case: a cheap step leaves loop overhead nowhere to hide)."""
    images, labels = _uint8_cifar(res.batch * steps)
    data = DeviceBatches(images, labels, CIFAR_MEAN, CIFAR_STD, device)
    model = _model(LOOP_ARCH, "cifar", 100, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    config = {"train": {"batch_size": res.batch}, "seed": 0}
    amp = device.type == "cuda"

    def harness() -> None:
        train_epoch(model, opt, None, 0, config, device, amp, Hooks(), data)  # type: ignore[arg-type]

    def reference() -> None:
        for x, y in data.epoch(0, res.batch, 0):
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    h, r = _median_pair(harness, reference, res.repeats, device, warmup=1)
    res.loop_arch = LOOP_ARCH
    res.harness_loop_step_s, res.reference_loop_step_s = h / steps, r / steps
    res.loop_ratio = r / h  # throughput of the harness loop relative to the plain loop


class _PILCifar(Dataset):
    """CIFAR as torchvision stores it (uint8 HWC arrays), decoded through PIL per item."""

    def __init__(self, images: torch.Tensor, labels: list[int], transform: Callable) -> None:
        self.images, self.labels, self.transform = images.numpy(), labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def bench_pipeline(res: BenchResult, device: torch.device, n: int = 8192,
                   batch: int = 256) -> None:
    """3. On-device CIFAR pipeline / torchvision DataLoader (2 workers), images per second."""
    images, labels = _uint8_cifar(n)
    fast = DeviceBatches(images, labels, CIFAR_MEAN, CIFAR_STD, device)
    tv = transforms.Compose([transforms.RandomCrop(32, padding=4),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])
    loader = DataLoader(_PILCifar(images, labels, tv), batch_size=batch, shuffle=True,
                        num_workers=2, drop_last=True, persistent_workers=True,
                        pin_memory=device.type == "cuda")

    def device_epoch() -> None:
        for x, _ in fast.epoch(0, batch, 0):
            pass

    def loader_epoch() -> None:
        for x, y in loader:
            x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    a, b = _median_pair(device_epoch, loader_epoch, max(3, res.repeats // 2), device, warmup=1)
    done = (n // batch) * batch
    res.device_pipeline_img_s, res.dataloader_img_s = done / a, done / b
    res.pipeline_ratio = res.device_pipeline_img_s / res.dataloader_img_s


def bench_count(res: BenchResult) -> None:
    """4. Seconds to count params and FLOPs of every zoo configuration the suites need, from
    nothing (no stored or remembered count is used)."""
    import suites
    from harness.costs.cache import forget_counts
    from harness.costs.compare import cost_table

    forget_counts()
    t0 = time.perf_counter()
    cost_table(suites.all_suites())
    res.count_seconds = time.perf_counter() - t0


def bench_gpu_epoch(res: BenchResult, device: torch.device) -> None:
    """5. GPU only: a CIFAR-100 epoch of ResNet-50 ± BA²M (50,000 images at the paper's batch
    of 256) and the projected wall time of Table I (rows x seeds x epochs, scaled by FLOPs)."""
    import suites
    from harness.costs.compare import cost_row
    from harness.plan.jobs import expand, profile

    n, batch = 50_000, 256
    images, labels = _uint8_cifar(n)
    data = DeviceBatches(images, labels, CIFAR_MEAN, CIFAR_STD, device)
    epoch_s = {}
    for name, kw in (("baseline", {}), ("ba2m", {"attention": "ba2m"})):
        model = _model("resnet50", "cifar", 100, device, **kw)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        config = {"train": {"batch_size": batch}, "seed": 0}
        train_epoch(model, opt, None, 0, config, device, True, Hooks(), data)  # type: ignore[arg-type]
        _sync(device)
        t0 = time.perf_counter()
        train_epoch(model, opt, None, 1, config, device, True, Hooks(), data)  # type: ignore[arg-type]
        _sync(device)
        epoch_s[name] = time.perf_counter() - t0
    suite = suites.get("table1")
    ref = cost_row(suite, suite.rows[0]).flops_g or 1.0
    total = 0.0
    for job in expand(suite, profile("paper")):
        flops = cost_row(suite, job.row).flops_g or ref
        per_epoch = epoch_s["ba2m" if job.row.method == "ba2m" else "baseline"] * flops / ref
        total += per_epoch * job.config["train"]["epochs"]
    res.gpu = {"name": torch.cuda.get_device_name(0),
               "epoch_s_resnet50": epoch_s["baseline"], "epoch_s_resnet50_ba2m": epoch_s["ba2m"],
               "table1_projected_hours": total / 3600,
               "projection": "sum over Table I jobs (12 rows x 5 seeds x 164 epochs) of the "
                             "measured ResNet-50 epoch time scaled by each row's FLOPs"}


def run_bench(device: str = "cpu", arch: str = "resnet50", dataset: str = "cifar100",
              batch: int = 64, repeats: int = 5, parts: tuple[str, ...] = ("step", "loop",
              "pipeline", "count", "gpu"), pipeline_images: int = 8192) -> BenchResult:
    """Run the benchmark's parts on ``device``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as training sets it (harness.training.loop)
    form = "imagenet" if dataset == "imagenet" else "cifar"
    classes = {"imagenet": 1000, "cifar10": 10}.get(dataset, 100)
    res = BenchResult(
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else
        f"cpu ({platform.processor() or platform.machine()})",
        torch_version=torch.__version__, threads=torch.get_num_threads(), arch=arch,
        dataset=dataset, batch=batch, repeats=repeats,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if "step" in parts:
        bench_step(res, dev, form, classes)
        bench_gsa_memory(res)
    if "loop" in parts:
        bench_loop(res, dev)
    if "pipeline" in parts:
        bench_pipeline(res, dev, n=pipeline_images)
    if "count" in parts:
        bench_count(res)
    if "gpu" in parts and dev.type == "cuda":
        bench_gpu_epoch(res, dev)
    return res


def save(res: BenchResult, folder: str | Path = "results/bench", path: str | None = None) -> Path:
    """Write the result as JSON under ``folder`` (and to ``path`` if given)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    target = inside(out, f"bench-{res.created_at.replace(':', '')}.json")
    text = json.dumps(asdict(res), indent=1)
    target.write_text(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    return target


def summary_line(res: BenchResult) -> str:
    """The final line: every ratio."""
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    by_impl = " ".join(f"ba2m_step_{i}={f(r)}" for i, r in res.ba2m_step_ratio_by_impl.items())
    peaks = " ".join(f"gsa_peak_{i}/pooled={f(r)}" for i, r in res.gsa_module_peak_ratio.items()
                     if i != "pooled")
    return (f"ratios: ba2m_step={f(res.ba2m_step_ratio)} ba2m_memory={f(res.ba2m_memory_ratio)} "
            f"loop={f(res.loop_ratio)} pipeline={f(res.pipeline_ratio)} "
            f"count_seconds={f(res.count_seconds)}" + "".join(
                f" {s}" for s in (by_impl, peaks) if s))

