"""SLURM / submitit-local task environment -> torch.distributed variables."""

from __future__ import annotations

import pytest

from launchers import env


def test_master_port_is_a_function_of_the_job_id_in_the_unprivileged_range():
    ports = [env.master_port_for_job(j) for j in range(100000, 100050)]
    assert all(15000 <= p < 30000 for p in ports)
    assert len(set(ports)) == len(ports)  # concurrent jobs (consecutive ids) never share a port
    assert env.master_port_for_job("123") == env.master_port_for_job(123)
    assert env.master_port_for_job("77_3") == env.master_port_for_job(773)  # array task ids: digits
    with pytest.raises(ValueError, match="no digits"):
        env.master_port_for_job("abc")


@pytest.mark.parametrize("nodelist, first", [
    ("localhost", "localhost"),
    ("gpu[003-005,9],cpu1", "gpu003"),
    ("node[7,2-3]", "node7"),
    ("a1,b2", "a1"),
])
def test_first_host_of_a_node_list(nodelist, first):
    assert env._first_host_of_pattern(nodelist) == first
    assert env.first_host(nodelist) == first  # scontrol when installed, the parser otherwise


@pytest.mark.parametrize("spec, node, count", [("4", 0, 4), ("4(x2)", 1, 4), ("2(x3),1", 3, 1), ("3,1", 1, 1)])
def test_tasks_per_node_spec(spec, node, count):
    assert env._tasks_on_node(spec, node) == count


def _slurm_task(procid: int, localid: int, nodeid: int) -> dict:
    # what srun exports to one task of a 2-node x 4-GPU job
    return {
        "SLURM_JOB_ID": "4242", "SLURM_PROCID": str(procid), "SLURM_LOCALID": str(localid),
        "SLURM_NODEID": str(nodeid), "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8",
        "SLURM_TASKS_PER_NODE": "4(x2)", "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
        "SLURM_JOB_NODELIST": "gpu[017-018]", "SLURM_STEP_NODELIST": "gpu[017-018]",
        "SLURM_JOB_NUM_NODES": "2", "SLURM_STEP_NUM_NODES": "2",
    }


def test_every_task_of_a_multi_node_job_agrees_on_the_rendezvous():
    tasks = [env.detect(_slurm_task(rank, rank % 4, rank // 4)) for rank in range(8)]
    assert [t.rank for t in tasks] == list(range(8))
    assert [t.local_rank for t in tasks] == [0, 1, 2, 3] * 2
    assert {(t.master_addr, t.master_port, t.world_size, t.local_world_size, t.num_nodes) for t in tasks} == {
        ("gpu017", env.master_port_for_job(4242), 8, 4, 2)
    }
    assert tasks[5].node_rank == 1


def test_export_sets_the_torchrun_variables():
    target: dict = {"SLURM_CPUS_PER_TASK": "6"}
    env.export(env.detect(_slurm_task(5, 1, 1)), target)
    assert target["OMP_NUM_THREADS"] == "6"  # ranks sharing a node do not oversubscribe it
    assert target["RANK"] == "5" and target["WORLD_SIZE"] == "8" and target["LOCAL_RANK"] == "1"
    assert target["MASTER_ADDR"] == "gpu017" and target["MASTER_PORT"] == str(env.master_port_for_job(4242))


def test_submitit_local_tasks_and_plain_processes():
    local = env.detect({"SUBMITIT_LOCAL_GLOBALID": "1", "SUBMITIT_LOCAL_LOCALID": "1",
                        "SUBMITIT_LOCAL_NTASKS": "2", "SUBMITIT_LOCAL_JOB_ID": "31337"})
    assert (local.rank, local.world_size, local.master_addr) == (1, 2, "127.0.0.1")
    assert env.detect({"PATH": "/bin"}) is None
    assert env.restart_count({"SLURM_RESTART_COUNT": "3"}) == 3 and env.restart_count({}) == 0
