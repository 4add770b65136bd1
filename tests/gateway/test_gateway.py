"""The gateway between a real `hall serve` process and the simulated hall bus (real TCP port): what the
boards, pads and the voice do when clerks call, pause, press pad keys, when calls come in a burst,
when the link to the server is lost, and when a board stops answering."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from device_drivers import hallbus as hb
from simulators.hallbus_sim import HallBusSim
from tests.gateway.conftest import HALL, Api, TcpProxy, wait_until

# How long the tests keep the gateway away from the server. The brief's 30 s changes nothing but the
# number of failed reconnect attempts: the client's backoff is capped at 5 s, so a 6 s outage already
# goes through the same give-up-and-retry path at its cap. Set HALL_TEST_OUTAGE_S=30 to run the full one.
OUTAGE_S = float(os.environ.get("HALL_TEST_OUTAGE_S", "6"))


def board(sim: HallBusSim, address: int) -> str:
    return sim.led(address).render_text()


def composite(sim: HallBusSim) -> list[str]:
    return [line for line in board(sim, 99).split("\n") if line]


def called_frames(sim: HallBusSim, address: int) -> list[str]:
    """Tickets sent to a board with SHOW_CALLED, in order (what the board was told, not deduplicated
    retries: the simulator executes a retried frame once)."""
    return [hb.unpack_called(f.payload).ticket for f in sim.led(address).received if f.cmd == hb.Command.SHOW_CALLED]


def composite_heads(sim: HallBusSim) -> list[str]:
    """The newest line of every picture the composite board was sent, in order."""
    heads = []
    for f in sim.led(99).received:
        if f.cmd == hb.Command.SHOW_LINES:
            lines = hb.unpack_lines(f.payload)
            if lines and (not heads or heads[-1] != lines[0].text):
                heads.append(lines[0].text)
    return heads


def spoken(gw: Any) -> list[str]:
    """Announcements in the order they were played (FilePlayer's record), as display text."""
    assert gw.announcer.wait_idle(30)
    by_wav = {}
    for a in gw.announcements:
        by_wav.setdefault(a.wav, a.phrase.display)
    played = [by_wav[r.source] for r in gw.announcer.player.played if r.source in by_wav]
    return played


def test_a_call_shows_on_its_board_and_the_composite_board_and_is_announced(server, api: Api, bus, make_gateway) -> None:
    sim, port = bus
    gw = make_gateway(server.url, server.tokens, port.tcp_url)
    api.sign_in("2")
    wait_until(lambda: board(sim, 2) == "欢迎光临\n2号窗口", what="idle text on board 2")
    assert board(sim, 3) == "暂停服务"  # nobody signed in at window 3
    (number,) = api.issue()
    api.act("2", "call-next")
    wait_until(lambda: board(sim, 2) == f"请{number}号\n2号窗口", what="called number on board 2")
    assert sim.led(2).lines[0].mode == hb.Mode.BLINK
    wait_until(lambda: composite(sim)[:1] == [f"{number}  2号窗口"], what="composite board")
    assert board(sim, 1) == "暂停服务"  # other boards untouched
    assert spoken(gw) == [f"请{number}号到2号窗口办理"]
    # chime first, then the sentence
    played = gw.announcer.player.played
    assert played[0].source.name == "chime.wav" and played[1].source == gw.announcements[0].wav
    # the citizen arrives: the board shows the service, then finishing frees the window
    api.act("2", "start")
    wait_until(lambda: board(sim, 2) == f"{number}号办理中\n2号窗口", what="serving text")
    api.act("2", "finish", {"outcome": "instant"})
    wait_until(lambda: board(sim, 2) == "欢迎光临\n2号窗口", what="idle again")


def test_a_recall_is_announced_again_and_blinks_again(server, api: Api, bus, make_gateway) -> None:
    sim, port = bus
    gw = make_gateway(server.url, server.tokens, port.tcp_url)
    api.sign_in("4")
    (number,) = api.issue()
    api.act("4", "call-next")
    wait_until(lambda: called_frames(sim, 4) == [number], what="call on board 4")
    api.act("4", "recall")
    wait_until(lambda: called_frames(sim, 4) == [number, number], what="recall on board 4")
    assert spoken(gw) == [f"请{number}号到4号窗口办理"] * 2


def test_an_issued_ticket_is_rendered_ahead_so_its_call_synthesises_nothing(server, api: Api, bus, make_gateway,
                                                                            tmp_path: Path) -> None:
    sim, port = bus
    cache = tmp_path / "own-voice-cache"  # empty: what is in it, the gateway rendered in this test
    gw = make_gateway(server.url, server.tokens, port.tcp_url, voice={
        "player": "file", "folder": str(tmp_path / "voice-out"), "cache_dir": str(cache), "repeat": 1})
    api.sign_in("6")
    ann = gw.announcer
    window_piece = cache / ann.renderer.cache_name(ann.builder.window_piece("6"), ann.voice, ann.rate)
    wait_until(window_piece.exists, timeout=20, what="window pieces rendered at start-up")
    (number,) = api.issue()
    ticket_piece = cache / ann.renderer.cache_name(ann.builder.ticket_piece(number), ann.voice, ann.rate)
    wait_until(ticket_piece.exists, timeout=20, what=f"请{number}号 rendered when the ticket was issued")
    renders = ann.renderer.renders
    api.act("6", "call-next")
    wait_until(lambda: called_frames(sim, 6) == [number], what="call on board 6")
    assert spoken(gw) == [f"请{number}号到6号窗口办理"]
    assert gw.announcer.renderer.renders == renders  # joined from the two cached pieces
    assert gw.announcements[0].wav.name.startswith("joined-")


def test_a_paused_window_shows_zanting_fuwu(server, api: Api, bus, make_gateway) -> None:
    sim, port = bus
    make_gateway(server.url, server.tokens, port.tcp_url)
    api.sign_in("5")
    wait_until(lambda: board(sim, 5) == "欢迎光临\n5号窗口", what="idle")
    api.act("5", "pause", {"reason": "午休"})
    wait_until(lambda: board(sim, 5) == "暂停服务", what="paused text")
    assert sim.led(5).lines[0].colour == hb.Colour.YELLOW
    api.act("5", "resume")
    wait_until(lambda: board(sim, 5) == "欢迎光临\n5号窗口", what="idle after resume")


def test_caller_pad_keys_act_for_its_window_and_its_display_follows(server, api: Api, bus, make_gateway) -> None:
    sim, port = bus
    make_gateway(server.url, server.tokens, port.tcp_url)
    pad = sim.caller(101)
    api.sign_in("1")
    first, second, third = api.issue(3)
    wait_until(lambda: pad.display.waiting == 3 and pad.display.ticket == "", what="pad shows 3 waiting")
    pad.press("call_next")
    wait_until(lambda: api.window("1")["ticket"] and api.window("1")["ticket"]["number"] == first,
               what="the pad's call-next called the first ticket at window 1")
    wait_until(lambda: board(sim, 1) == f"请{first}号\n1号窗口", what="board 1 shows the pad's call")
    wait_until(lambda: (pad.display.ticket, pad.display.waiting) == (first, 2), what="pad shows current ticket")
    pad.press("start")
    wait_until(lambda: api.window("1")["status"] == "serving", what="start from the pad")
    pad.press("finish")
    wait_until(lambda: api.window("1")["status"] == "idle", what="finish from the pad")
    pad.press("pause")
    wait_until(lambda: api.window("1")["status"] == "paused", what="pause from the pad")
    wait_until(lambda: board(sim, 1) == "暂停服务", what="board 1 paused")
    pad.press("call_next")  # refused by the server while paused: the pad says why
    wait_until(lambda: "暂停" in pad.display.message, what="refusal shown on the pad")
    pad.press("resume")
    pad.press("call_next")
    wait_until(lambda: (pad.display.ticket, pad.display.waiting) == (second, 1), what="second ticket called from the pad")
    assert third


def test_burst_of_ten_calls_in_a_second_all_shown_and_announced_in_order(server, api: Api, bus, make_gateway) -> None:
    import socketio

    sim, port = bus
    gw = make_gateway(server.url, server.tokens, port.tcp_url)
    for w in api_windows():
        api.sign_in(w)
    api.issue(10)
    # the ground truth of the order: the server's own event stream, by seq
    order: list[tuple[int, str, str]] = []
    listener = socketio.Client(reconnection=False)
    listener.on("ticket", lambda ev: ev["type"] == "called" and order.append((ev["seq"], ev["ticket"]["number"], ev["window"])))
    listener.connect(server.url, auth={"hall": "t"}, transports=["websocket"], wait_timeout=10)
    try:
        barrier = threading.Barrier(10)

        def clerk(w: str) -> None:
            barrier.wait()
            api.act_parallel(w, "call-next")

        threads = [threading.Thread(target=clerk, args=(w,)) for w in api_windows()]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert time.monotonic() - started < 5  # the ten calls really were a burst (sanity, not a speed test)
        wait_until(lambda: len(order) == 10, what="ten call events")
    finally:
        listener.disconnect()
    order.sort()
    expected = [f"{number}  {window}号窗口" for _seq, number, window in reversed(order)]
    wait_until(lambda: composite(sim) == expected[:8], timeout=15, what="composite shows the last 8 calls, newest first")
    # The composite board is written once per batch of events the gateway has in hand (a frame at
    # 9600 baud takes a while), so two calls in one batch share a picture: its head lines are a
    # subsequence of the calls in call order, never reordered, ending with the newest.
    calls_in_order = list(reversed(expected))
    heads = composite_heads(sim)
    assert heads and heads[-1] == calls_in_order[-1]
    assert [h for h in calls_in_order if h in heads] == heads, "composite heads out of call order"
    for _seq, number, window in order:
        assert called_frames(sim, int(window)) == [number]
    assert spoken(gw) == [f"请{number}号到{window}号窗口办理" for _seq, number, window in order]


def api_windows() -> list[str]:
    return [str(w) for w in range(1, 11)]


def test_losing_the_server_link_then_reconnecting_shows_the_true_state(server, api: Api, bus, make_gateway,
                                                                       proxy: TcpProxy) -> None:
    sim, port = bus
    gw = make_gateway(proxy.url, server.tokens, port.tcp_url)
    for w in ("1", "2", "3"):
        api.sign_in(w)
    a1, a2, a3, a4 = api.issue(4)
    api.act("1", "call-next")
    wait_until(lambda: board(sim, 1) == f"请{a1}号\n1号窗口", what="first call shown")
    assert spoken(gw) == [f"请{a1}号到1号窗口办理"]

    proxy.cut()
    wait_until(lambda: not gw.server_online, what="gateway notices the lost link")
    # the hall goes on without the gateway: window 1 finishes and calls again, window 2 calls and
    # serves a citizen completely, window 3 calls
    api.act("1", "start")
    api.act("1", "finish", {"outcome": "instant"})
    api.act("1", "call-next")  # a2
    api.act("2", "call-next")  # a3
    api.act("2", "start")
    api.act("2", "finish", {"outcome": "instant"})
    api.act("3", "call-next")  # a4
    time.sleep(OUTAGE_S)
    assert board(sim, 1) == f"请{a1}号\n1号窗口"  # boards keep their last content meanwhile
    proxy.restore()

    wait_until(lambda: gw.server_online, timeout=30, what="gateway reconnects by itself")
    truth = [f"{ev['ticket']['number']}  {ev['window']}号窗口" for ev in reversed(api.snapshot()["recent_calls"])]
    wait_until(lambda: composite(sim) == truth, what="composite = the server's recent calls")
    assert truth == [f"{a4}  3号窗口", f"{a3}  2号窗口", f"{a2}  1号窗口", f"{a1}  1号窗口"]
    wait_until(lambda: board(sim, 1) == f"请{a2}号\n1号窗口", what="board 1 true state")
    wait_until(lambda: board(sim, 2) == "欢迎光临\n2号窗口", what="board 2 true state")
    wait_until(lambda: board(sim, 3) == f"请{a4}号\n3号窗口", what="board 3 true state")
    # the citizens still being called are announced once; the one already served is not; the first
    # call is not announced again
    assert spoken(gw) == [f"请{a1}号到1号窗口办理", f"请{a2}号到1号窗口办理", f"请{a4}号到3号窗口办理"]
    assert called_frames(sim, 1) == [a1, a2]
    assert called_frames(sim, 3) == [a4]
    assert called_frames(sim, 2) == []  # a3 was called and served while the gateway was away
    # and live events flow again
    api.act("3", "recall")
    wait_until(lambda: called_frames(sim, 3) == [a4, a4], what="recall after reconnect")
    assert spoken(gw)[-1] == f"请{a4}号到3号窗口办理"


def test_server_restart_resynchronises_without_repeating_a_call(server, api: Api, bus, make_gateway) -> None:
    sim, port = bus
    gw = make_gateway(server.url, server.tokens, port.tcp_url)
    api.sign_in("6")
    b1, b2 = api.issue(2)
    api.act("6", "call-next")
    wait_until(lambda: called_frames(sim, 6) == [b1], what="call shown")
    server.stop()
    wait_until(lambda: not gw.server_online, what="gateway notices the server is gone")
    time.sleep(OUTAGE_S)
    server.start()
    wait_until(lambda: gw.server_online, timeout=30, what="gateway reconnects to the restarted server")
    api.act("6", "start")
    api.act("6", "finish", {"outcome": "instant"})
    api.act("6", "call-next")
    wait_until(lambda: called_frames(sim, 6) == [b1, b2], what="next call after the restart")
    wait_until(lambda: composite(sim)[:2] == [f"{b2}  6号窗口", f"{b1}  6号窗口"], what="composite")
    assert spoken(gw) == [f"请{b1}号到6号窗口办理", f"请{b2}号到6号窗口办理"]


def test_a_board_that_stops_answering_is_reported_offline_and_retried_while_others_work(
        server, api: Api, bus, make_gateway) -> None:
    sim, port = bus
    make_gateway(server.url, server.tokens, port.tcp_url)
    wait_until(lambda: api.devices()["led-7"]["state"] == "online", what="led-7 reported online")
    assert api.devices()["gw"]["state"] == "online"
    sim.set_silent(7)
    wait_until(lambda: api.devices()["led-7"]["state"] == "offline", what="led-7 reported offline")
    assert "无应答" in (api.devices()["led-7"]["detail"] or "")
    # the rest of the hall keeps working, including calls for the dead board's window
    api.sign_in("8")
    api.sign_in("7")
    c8, c7 = api.issue(2)
    api.act("8", "call-next")
    wait_until(lambda: board(sim, 8) == f"请{c8}号\n8号窗口", what="board 8 works")
    api.act("7", "call-next")
    wait_until(lambda: composite(sim)[:1] == [f"{c7}  7号窗口"], what="composite works")
    assert api.devices()["led-8"]["state"] == "online"
    seen_while_dead = sim.requests_seen[7]
    # retried: it keeps being probed, and when it answers it is online again with the current call
    wait_until(lambda: sim.requests_seen[7] > seen_while_dead + 1, what="probes of the silent board")
    sim.set_silent(7, False)
    wait_until(lambda: board(sim, 7) == f"请{c7}号\n7号窗口", what="board 7 repainted when back")
    wait_until(lambda: api.devices()["led-7"]["state"] == "online", what="led-7 reported online again")


def test_evaluation_pad_shows_the_service_and_submits_the_grade_with_its_own_token(
        server, api: Api, bus, make_gateway) -> None:
    sim, port = bus
    paths = api.s.get(f"{api.base}/api/v1/openapi.json", timeout=10).json().get("paths", {})
    if "/api/v1/halls/{hall}/evaluations" not in paths:
        pytest.skip("the server has no evaluation endpoint yet")
    make_gateway(server.url, server.tokens, port.tcp_url)
    api.sign_in("1")
    (number,) = api.issue()
    api.act("1", "call-next")
    api.act("1", "start")
    ticket = api.act("1", "finish", {"outcome": "instant"})
    pad = sim.evalpad(151)
    prompt = pad.wait_for_prompt(15)
    assert prompt is not None, "no evaluation prompt reached the pad"
    assert prompt.ticket == number and prompt.clerk_name == "窗口1" and prompt.staff_no == "1001"
    pad.press_grade(5)

    api.login("boss")

    def graded() -> Any:
        rows = api.req("GET", "/halls/t/evaluations", "boss")["evaluations"]
        return [r for r in rows if r.get("ticket_id") == ticket["id"] and r.get("grade") == 5]

    wait_until(graded, what="grade 5 stored for the ticket")


def test_gateway_command_runs_as_its_own_process(server, api: Api, bus, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    sim, port = bus
    (tmp_path / "tokens.txt").write_text(f"gw {server.tokens['gw']}\n", encoding="utf-8")
    (tmp_path / "gw.toml").write_text(f'''
server = "{server.url}"
hall = "t"
device = "gw"
tokens_file = "{tmp_path / 'tokens.txt'}"

[voice]
player = "file"
folder = "{tmp_path / 'voice'}"
cache_dir = "{tmp_path / 'cache'}"
repeat = 1

[[buses]]
name = "bus1"
port = "{port.pty_path}"

[[buses.devices]]
id = "led-9"
kind = "led"
address = 9
window = 9
''', encoding="utf-8")
    log = (tmp_path / "gw.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "hall_server.cli", "gateway", str(tmp_path / "gw.toml")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        api.sign_in("9")
        wait_until(lambda: board(sim, 9) == "欢迎光临\n9号窗口", timeout=30, what="the gateway process drives board 9 over the pty")
        (number,) = api.issue()
        api.act("9", "call-next")
        wait_until(lambda: board(sim, 9) == f"请{number}号\n9号窗口", what="call on board 9")
        wait_until(lambda: (tmp_path / "voice" / "played.log").exists()
                   and len((tmp_path / "voice" / "played.log").read_text().splitlines()) == 2, what="chime + call written as WAVs")
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    assert rc == 0, (tmp_path / "gw.log").read_text()[-2000:]


def test_the_link_hands_over_events_from_one_thread_in_the_order_the_server_sent_them(server, api: Api) -> None:
    """python-engineio's client would run each message's handler on a thread of its own; the gateway's
    link must not, or a window's older state could be applied after a newer one."""
    from hall_server.gateway.link import LiveLink

    got: list[tuple[int, str, Any]] = []
    link = LiveLink(server.url, HALL, server.tokens["gw"],
                    lambda name, data: got.append((threading.get_ident(), name, data)))
    link.start()
    try:
        wait_until(lambda: any(name == "snapshot" for _t, name, _d in got), what="the snapshot")
        for w in api_windows():
            api.sign_in(w)
        api.issue(20)
        for _ in range(2):
            for w in api_windows():
                api.act(w, "call-next")
                api.act(w, "start")
                api.act(w, "finish", {"outcome": "instant"})
        wait_until(lambda: sum(1 for _t, n, d in got if n == "ticket" and d["type"] == "finished") == 20,
                   what="twenty finished events")
    finally:
        link.stop()
    assert len({thread for thread, _n, _d in got}) == 1, "events were handed over from several threads"
    seqs = [d["seq"] for _t, name, d in got if name == "ticket"]
    assert len(seqs) == 80 and seqs == sorted(seqs)  # issued, called, started, finished: as committed
