"""The operating state machine, and its services answering success=false in the wrong state."""

import time

import pytest

from ir_robot.ros.supervisor import ProcedureStateMachine


def test_happy_path_and_repeat():
    m = ProcedureStateMachine()
    assert m.start()[0] and m.state == "starting"
    assert m.started()[0] and m.state == "running"
    assert m.result({"outcome": "success"}) == (True, "done")
    assert m.start()[0] and m.procedures == 2
    m.started()
    assert m.result({"outcome": "failed", "reason": "no vein"})[1] == "failed"
    assert m.last_result["reason"] == "no vein"


def test_abort_then_result_is_aborted_whatever_the_controller_says():
    m = ProcedureStateMachine()
    m.start(), m.started()
    ok, msg = m.abort()
    assert ok and m.state == "aborting" and "retract" in msg
    assert m.result({"outcome": "success"}) == (True, "aborted")


@pytest.mark.parametrize(
    "setup, call, words",
    [
        ([], "abort", "nothing to abort in state 'idle'"),
        (["start", "started"], "start", "already running"),
        (["estop"], "start", "e-stop is latched"),
        (["start", "started"], "reset", "cannot reset while running"),
    ],
)
def test_wrong_state_calls_refused_with_reason_and_no_change(setup, call, words):
    m = ProcedureStateMachine()
    for s in setup:
        getattr(m, s)()
    before = m.state
    ok, reason = getattr(m, call)()
    assert not ok and words in reason and m.state == before


def test_estop_from_anywhere_and_reset_to_idle():
    m = ProcedureStateMachine()
    m.start(), m.started()
    assert m.estop()[0] and m.state == "estop"
    assert m.result({"outcome": "success"})[0] is False  # a late result does not clear the e-stop
    assert m.reset() == (True, "idle")


@pytest.mark.ros
def test_services_answer_in_wrong_state(ros_context):
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from ir_robot.ros import qos
    from ir_robot.ros.supervisor import SupervisorNode

    sup = SupervisorNode(
        context=ros_context, cli_args=["--ros-args", "-p", "reset_service:=''"], use_global_arguments=False
    )
    client = Node("client", context=ros_context)
    states = []
    client.create_subscription(String, "/procedure/state", lambda m: states.append(m.data), qos.latched())
    ex = MultiThreadedExecutor(context=ros_context)
    ex.add_node(sup)
    ex.add_node(client)

    def call(name):
        cli = client.create_client(Trigger, name)
        assert cli.wait_for_service(timeout_sec=10)
        fut = cli.call_async(Trigger.Request())
        ex.spin_until_future_complete(fut, timeout_sec=10)
        return fut.result()

    try:
        # The state topic is latched (keep-last 1): wait until the client has heard "idle",
        # otherwise a late discovery would deliver only the newest state.
        deadline = time.monotonic() + 10
        while not states and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        assert states == ["idle"]
        res = call("/procedure/abort")
        assert res.success is False and "nothing to abort" in res.message
        assert call("/procedure/start").success
        res = call("/procedure/start")
        assert res.success is False and "already running" in res.message
        assert call("/rig/estop").success
        deadline = time.monotonic() + 5
        while "estop" not in states and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        assert states[0] == "idle" and states[-1] == "estop" and "running" in states
    finally:
        ex.shutdown()
        client.destroy_node()
        sup.destroy_node()
