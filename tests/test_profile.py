#!/usr/bin/env python3
"""test_profile.py - bench/profile.py's classifier on fixed `perf script` samples.

No perf, no server: the samples below are call chains as `perf script -F
comm,tid,ip,sym,dso` printed them for our servers on this kernel (6.18), shortened. Each
must land in the bucket that the rule table in bench/profile.py promises; the parser must
split the text into samples; the summary's medians of shares must add up to the whole.
Plain pytest functions, one per sample (`pytest-3 tests/test_profile.py`).
"""

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
import profile as prof

K = "[kernel.kallsyms]"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"

# (expected bucket, why, perf script text of one sample)
SAMPLES = [
    ("copy", "a copy under tcp_sendmsg is a copy, not TCP", """\
epoll 31658/31658
\tffffffff81ba4974 _copy_from_iter ([kernel.kallsyms])
\tffffffff82065ed4 tcp_sendmsg_locked ([kernel.kallsyms])
\tffffffff8206652b tcp_sendmsg ([kernel.kallsyms])
\tffffffff81e79300 __sys_sendmsg ([kernel.kallsyms])
\tffffffff8223df91 do_syscall_64 ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
\t          10ac10 __libc_sendmsg (/usr/lib/x86_64-linux-gnu/libc.so.6)
"""),
    ("net", "TCP receive in the sender's softirq (loopback)", """\
epoll 31658/31658
\tffffffff8207d306 tcp_chrono_stop ([kernel.kallsyms])
\tffffffff820750a8 tcp_ack ([kernel.kallsyms])
\tffffffff8208d30a tcp_v4_rcv ([kernel.kallsyms])
\tffffffff81eb1bfe net_rx_action ([kernel.kallsyms])
\tffffffff81369c4d handle_softirqs ([kernel.kallsyms])
\tffffffff81eadd34 __dev_queue_xmit ([kernel.kallsyms])
\tffffffff8223df91 do_syscall_64 ([kernel.kallsyms])
"""),
    ("net", "a lock counts for whoever took it (tcp_v4_rcv)", """\
epoll 31658/31658
\tffffffff822525e7 _raw_spin_lock ([kernel.kallsyms])
\tffffffff8208d299 tcp_v4_rcv ([kernel.kallsyms])
\tffffffff8204d1fc ip_protocol_deliver_rcu ([kernel.kallsyms])
"""),
    ("sched", "sock_def_readable's irq-off wake-up is a wake-up", """\
epoll 31658/31658
\tffffffff81416a2b _raw_spin_unlock_irqrestore ([kernel.kallsyms])
\tffffffff81e7f0c1 sock_def_readable ([kernel.kallsyms])
\tffffffff82070c1a tcp_data_queue ([kernel.kallsyms])
\tffffffff8207796b tcp_rcv_established ([kernel.kallsyms])
"""),
    ("sched", "switching back in after epoll_wait slept", """\
epoll 31658/31658
\tffffffff813a1b2e finish_task_switch.isra.0 ([kernel.kallsyms])
\tffffffff8224c1a0 __schedule ([kernel.kallsyms])
\tffffffff8224c9b3 schedule ([kernel.kallsyms])
\tffffffff81460a1e schedule_hrtimeout_range_clock ([kernel.kallsyms])
\tffffffff816a2d55 do_epoll_wait ([kernel.kallsyms])
\tffffffff816a3a1e __x64_sys_epoll_wait ([kernel.kallsyms])
\tffffffff8223df91 do_syscall_64 ([kernel.kallsyms])
"""),
    ("poller", "epoll's own work", """\
epoll 31658/31658
\tffffffff816a1f30 ep_item_poll.isra.0 ([kernel.kallsyms])
\tffffffff816a2460 ep_send_events ([kernel.kallsyms])
\tffffffff816a2d55 do_epoll_wait ([kernel.kallsyms])
"""),
    ("poller", "tcp_poll asked by epoll is the poller's question", """\
epoll 31658/31658
\tffffffff82066a10 tcp_poll ([kernel.kallsyms])
\tffffffff81e76210 sock_poll ([kernel.kallsyms])
\tffffffff816a1f30 ep_item_poll.isra.0 ([kernel.kallsyms])
""", ),
    ("poller", "io_uring's submission path", """\
uring 4242/4242
\tffffffff81bd1230 io_submit_sqes ([kernel.kallsyms])
\tffffffff81bd2a10 __do_sys_io_uring_enter ([kernel.kallsyms])
\tffffffff8223df91 do_syscall_64 ([kernel.kallsyms])
"""),
    ("net", "a receive issued by io_uring is TCP work", """\
uring 4242/4242
\tffffffff82063a20 tcp_recvmsg_locked ([kernel.kallsyms])
\tffffffff82064110 tcp_recvmsg ([kernel.kallsyms])
\tffffffff81e75a00 sock_recvmsg ([kernel.kallsyms])
\tffffffff81bdc120 io_recv ([kernel.kallsyms])
\tffffffff81bd0400 io_issue_sqe ([kernel.kallsyms])
"""),
    ("sched", "io_schedule is the scheduler, not io_uring", """\
uring 4242/4242
\tffffffff8224cb00 io_schedule ([kernel.kallsyms])
\tffffffff81bd5000 io_cqring_wait ([kernel.kallsyms])
"""),
    ("syscall", "the leaf in entry code", """\
epoll 31658/31658
\tffffffff8223df91 do_syscall_64 ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
\t          10ac10 __libc_recv (/usr/lib/x86_64-linux-gnu/libc.so.6)
"""),
    ("kernel", "do_syscall_64 above an unknown frame decides nothing (leaf only)", """\
epoll 31658/31658
\tffffffff81614ad0 generic_fillattr ([kernel.kallsyms])
\tffffffff815f0110 vfs_getattr_nosec ([kernel.kallsyms])
\tffffffff815f0990 __do_sys_newfstat ([kernel.kallsyms])
\tffffffff8223df91 do_syscall_64 ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
"""),
    ("parser", "libhttp_parser", """\
epoll 31658/31658
\t            4c2a http_parser_execute (/usr/lib/x86_64-linux-gnu/libhttp_parser.so.2.9.4)
\t           1a2b3 http_parse_request (/home/student/c10k/bin/epoll)
"""),
    ("parser", "nginx's request-line parser", """\
nginx 777/777
\t           5f1e2 ngx_http_parse_request_line (/usr/sbin/nginx)
"""),
    ("handler", "our handler", """\
epoll 31658/31658
\t           1b2c4 handler_prepare_response (/home/student/c10k/bin/epoll)
"""),
    ("user", "the event loop and libc", """\
epoll 31658/31658
\t           10ac10 __strncasecmp_evex (/usr/lib/x86_64-linux-gnu/libc.so.6)
"""),
    ("user", "an unknown user frame", """\
epoll 31658/31658
\t4000010001000000 [unknown] ([unknown])
"""),
    ("kernel", "a chain that leaves the kernel without a match", """\
epoll 31658/31658
\tffffffff81300000 __get_user_8 ([kernel.kallsyms])
\t           10ac10 __libc_recv (/usr/lib/x86_64-linux-gnu/libc.so.6)
"""),
]


@pytest.mark.parametrize("want, why, text", SAMPLES, ids=[why for _, why, _ in SAMPLES])
def test_bucket(want, why, text):
    samples, _ = prof.parse_script(text)
    assert len(samples) == 1, f"one sample parsed, got {len(samples)}"
    assert prof.classify(samples[0][1]) == want


def test_every_bucket_named():
    seen = {want for want, _, _ in SAMPLES}
    assert seen == set(prof.BUCKET_NAMES), "the samples cover every bucket"


ALL_SAMPLES = "\n".join(t for _, _, t in SAMPLES) + "\n"


def test_parse_many():
    with_pids, _ = prof.parse_script(ALL_SAMPLES)
    samples = [f for _, f in with_pids]
    assert len(samples) == len(SAMPLES), "every sample in one text"
    assert with_pids[0][0] == 31658, "the sample's pid"
    assert samples[0][0] == ("_copy_from_iter", K), "frame (symbol, dso)"
    assert samples[0][-1] == ("__libc_sendmsg", LIBC), "last frame"


def test_offset_dropped():
    offs, _ = prof.parse_script("x 1/1\n\tffff81 tcp_ack+0x1f ([kernel.kallsyms])\n")
    assert offs == [(1, [("tcp_ack", K)])], "+0xOFFSET dropped"


def test_count_buckets():
    samples = [f for _, f in prof.parse_script(ALL_SAMPLES)[0]]
    counts, leaves = prof.count_buckets(samples)
    assert sum(counts.values()) == len(SAMPLES), "every sample counted once"
    assert leaves["copy"]["_copy_from_iter"] == 1, "leaves per bucket recorded"


def test_empty_chain():
    assert prof.classify([]) == "kernel", "an empty chain is other kernel"


# A fork server's child forked in the window, a thread of the child (same pid), an unrelated
# task on the same CPU (a comm with a space), and the records perf adds for them.
FORKS = """\
fork 100/100 PERF_RECORD_FORK(200:200):(100:100)
fork 200/200 PERF_RECORD_COMM: fork:200/200
fork 200/200 PERF_RECORD_FORK(200:201):(200:200)
fork 200/200 PERF_RECORD_FORK(300:300):(200:200)
Web Content 999/999 PERF_RECORD_FORK(1000:1000):(999:999)
fork 100/100
\tffffffff8207d306 tcp_ack ([kernel.kallsyms])

fork 200/201
\tffffffff8223df91 do_syscall_64 ([kernel.kallsyms])

fork 300/300
\t            4c2a http_parser_execute (/usr/lib/libhttp_parser.so)

Web Content 999/999
\tffffffff8224c1a0 __schedule ([kernel.kallsyms])

Web Content 1000/1000
\tffffffff8224c1a0 __schedule ([kernel.kallsyms])
"""


def test_follow_forks():
    samples, parents = prof.parse_script(FORKS)
    assert parents == {200: 100, 300: 200, 1000: 999}, "fork records, threads skipped"
    assert [pid for pid, _ in samples] == [100, 200, 300, 999, 1000], \
        "samples and their pids, task events skipped"
    keep = prof.descendants([100], parents)
    assert keep == {100, 200, 300}, "the server and the children forked under it"
    kept = [prof.classify(f) for pid, f in samples if pid in keep]
    assert kept == ["net", "syscall", "parser"], "only the server's samples"


def row(server, cpu, shares):
    r = {"server": server, "cpu_us_per_req": cpu, "achieved_rps": 5000.0, "p99_ms": 0.2,
         "samples": 1000, "client_bound": 0}
    for b in prof.BUCKET_NAMES:
        r[b + "_share"] = shares.get(b, 0.0)
    return r


def test_summary():
    rows = [row("epoll", 10.0, {"net": 0.6, "sched": 0.4}),
            row("epoll", 12.0, {"net": 0.5, "sched": 0.3, "user": 0.2}),
            row("epoll", 14.0, {"net": 0.7, "sched": 0.3})]
    s = prof.summarise(rows)["epoll"]
    total = sum(s[b + "_share"] for b in prof.BUCKET_NAMES)
    assert total == pytest.approx(1.0, abs=1e-9), "median shares rescaled to a whole"
    us = sum(s[b + "_us"] for b in prof.BUCKET_NAMES)
    assert us == pytest.approx(12.0, abs=1e-9), "bucket µs add up to the median CPU per request"
    assert s["reps"] == 3, "three reps"
    assert "epoll" in prof.table(prof.summarise(rows)), "the table names the server"


def test_note_names_client_bound():
    """The plot's note says which servers' runs were client-bound, and only those."""
    rows = [dict(row("epoll", 10.0, {"net": 1.0}), client_bound=1),
            row("uring", 11.0, {"net": 1.0}), row("uring", 11.0, {"net": 1.0})]
    for r in rows:
        r.update(conns=100, offered_rps=5000.0, window_s=5.0, date="2026-12-07",
                 cpu_pressure=1.0)
    note = prof.note_for(rows)
    assert "Client-bound" in note and "run of: epoll." in note, note
    assert "Client-bound" not in prof.note_for(rows[1:]), "no mark without a client-bound run"


def test_unknown_server():
    with pytest.raises(prof.ProfileError, match="no server named"):
        prof.make_target("no-such-server", "/tmp", "/tmp", "/tmp")


def test_bench_binary_with_an_option(tmp_path):
    """floor+uring: a build/bench/ binary run with one of its own options, as epoll+busy-poll
    is a bin/ one; the wrapper it gets execs the binary with the option first."""
    floor = os.path.join(prof.BUILD_DIR, "bench", "floor")
    if not os.access(floor, os.X_OK):
        pytest.skip(f"no {floor} (make bench-floor)")
    target = prof.make_target("floor+uring", "/tmp", "/tmp", str(tmp_path))
    with open(target.binary) as f:
        wrapper = f.read()
    assert floor in wrapper and "--uring" in wrapper, wrapper
    with pytest.raises(prof.ProfileError, match="no server named"):
        prof.make_target("nosuch+uring", "/tmp", "/tmp", str(tmp_path))
