"""The store's per-request work does not grow with the project (issue 18, item 4): leasing the
next item and labelling it read the queue and a few rows, never every image. Counted in SQLite
virtual-machine steps (``set_progress_handler``), which do not depend on the machine's speed."""

from __future__ import annotations

from pathlib import Path

from unisal.app.store import ProjectStore

CLASSES = ["tumour", "stroma"]
STEP = 100  # the progress handler's period, in virtual-machine instructions


def project(path: Path, n: int) -> ProjectStore:
    store = ProjectStore.create(path, classes=CLASSES, settings={"image_root": str(path.parent)})
    store.add_images(
        (
            f"slide{i // 1000}.svs#tile/{i}",
            f"{i:064x}",
            1,
            f"slide{i // 1000}",
            "test" if i % 50 == 0 else "train",
            0,
        )
        for i in range(n)
    )
    ids = [int(r[0]) for r in store.conn.execute("SELECT id FROM images WHERE split = 'train' LIMIT 20")]
    store.replace_queue(None, [{"image_id": i, "reason": "test"} for i in ids])
    return store


def steps(store: ProjectStore, call) -> int:
    """Progress-handler calls (one per STEP instructions) while ``call()`` runs."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    store.conn.set_progress_handler(tick, STEP)
    try:
        call()
    finally:
        store.conn.set_progress_handler(None, STEP)
    return count[0]


def test_lease_and_label_cost_the_same_in_a_small_and_a_fifty_times_larger_project(tmp_path: Path) -> None:
    costs = {}
    for n in (1_000, 50_000):
        store = project(tmp_path / f"p{n}.db", n)
        item = store.lease_next("a")
        assert item is not None
        lease = steps(store, lambda s=store: s.lease_next("b"))
        label = steps(store, lambda s=store, i=item.image_id: s.set_label(i, "tumour", "a"))
        held = steps(store, store.held_out_ids)
        costs[n] = (lease, label, held)
        store.close()
    small, large = costs[1_000], costs[50_000]
    # a scan of 50,000 images is at least 50,000 instructions (500 steps); these stay flat
    assert large[0] <= small[0] + 5 and large[0] < 50, costs
    assert large[1] <= small[1] + 5 and large[1] < 50, costs
    # the held-out ids read the split index: 1,000 of the 50,000 rows
    assert large[2] < 200, costs
