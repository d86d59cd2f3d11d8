"""The single sharding rule and the rank/world environment."""
import pytest

from nrvl import dist


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_are_strided_and_partition_the_items(world):
    items = list(range(17))
    shards = [dist.shard(items, r, world) for r in range(world)]
    assert shards[0] == items[0::world]
    assert sorted(x for s in shards for x in s) == items
    assert all(len(set(a) & set(b)) == 0 for i, a in enumerate(shards) for b in shards[i + 1:])


@pytest.mark.parametrize("rank, world, match", [(2, 2, "rank"), (-1, 2, "rank"), (0, 0, "world_size")],
                         ids=["rank-too-big", "rank-negative", "world-zero"])
def test_shard_rejects_bad_rank_or_world(rank, world, match):
    with pytest.raises(ValueError, match=match):
        dist.shard([1, 2, 3], rank, world)


def test_info_from_env():
    assert dist.info_from_env({}) == dist.DistInfo(0, 1, 0)
    info = dist.info_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main, info.distributed) == (3, 4, 1, False, True)
    with pytest.raises(ValueError, match="RANK=4 and WORLD_SIZE=4"):
        dist.info_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        dist.info_from_env({"WORLD_SIZE": "two"})


def test_single_process_collectives_are_local():
    dist.init(dist.DistInfo(), "cpu")  # a world of one joins no process group
    dist.barrier()
    assert dist.broadcast({"a": 1}) == {"a": 1}
    assert dist.gather_errors(None) == []
    assert dist.gather_errors("boom") == ["boom"]
