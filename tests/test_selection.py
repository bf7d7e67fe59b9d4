"""The two-stage top-k (`sparsities.selection.topk_indices`) selects what ``torch.topk`` does."""

from __future__ import annotations

import pytest
import torch

from sparseae.sparsities.selection import group_size, topk_indices


def _selected_values(a: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return a.gather(1, idx).sort(dim=1).values


@pytest.mark.parametrize(
    "rows,width,k", [(37, 4096, 32), (5, 16384, 100), (64, 2048, 8), (33, 1000, 25), (9, 2048, 30)]
)
def test_the_two_stage_top_k_keeps_the_same_values_as_torch_topk(rows, width, k):
    torch.manual_seed(0)
    a = torch.randn(rows, width)
    a[0, :200] += 10.0  # one row's top k crowded into a few groups
    assert group_size(width, k) is not None  # the two-stage path is the one under test
    idx = topk_indices(a, k)
    assert idx.shape == (rows, k)
    assert all(len(set(r.tolist())) == k for r in idx)  # k distinct latents per row
    want = a.topk(k, dim=1).values.sort(dim=1).values
    torch.testing.assert_close(_selected_values(a, idx), want, rtol=0, atol=0)


def test_ties_and_nan_rank_as_torch_topk_ranks_them():
    torch.manual_seed(1)
    a = torch.randint(0, 5, (16, 4096)).float()  # thousands of equal values per row
    a[3, 1000] = float("nan")
    idx = topk_indices(a, 32)
    want = a.topk(32, dim=1).values
    got = a.gather(1, idx)
    assert bool(got[3].isnan().any())  # NaN is kept first, as topk keeps it
    finite = ~torch.isnan(want)
    torch.testing.assert_close(
        got.nan_to_num(99).sort(1).values, want.nan_to_num(99).sort(1).values, rtol=0, atol=0
    )
    assert finite.sum() == 16 * 32 - 1


def test_narrow_rows_and_unfitting_widths_fall_back_to_torch_topk():
    assert group_size(1024, 8) is None  # narrow
    assert group_size(4100, 8) is None  # no group size divides it
    assert group_size(4096, 512) is None  # too few groups for k
    assert group_size(1000, 8) is None  # a small k below 2,048 latents: topk is faster
    assert group_size(1000, 25) == 8 and group_size(1000, 40) is None  # 125 groups < 4k
    a = torch.randn(3, 1000)
    torch.testing.assert_close(
        _selected_values(a, topk_indices(a, 10)), a.topk(10, dim=1).values.sort(1).values
    )
