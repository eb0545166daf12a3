#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs a command on a new pseudo-terminal, waits for a prompt, types an answer, and
writes everything the terminal showed to a transcript file.

usage: pty_answer.py TRANSCRIPT PROMPT ANSWER -- COMMAND...

Exits with the command's exit code (124 when the prompt never came within 30 s). The
answer is typed only after the prompt, as a person would, so the test sees what the
terminal shows while the program reads it.
"""
import os
import pty
import select
import sys
import time


def main():
    transcript, prompt, answer = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
    cmd = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    seen = b""
    answered = False
    deadline = time.monotonic() + 30
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and prompt in seen:
            os.write(fd, answer + b"\n")
            answered = True
        if not answered and time.monotonic() > deadline:
            os.kill(pid, 9)
            break
    _, status = os.waitpid(pid, 0)
    with open(transcript, "wb") as f:
        f.write(seen)
    if not answered:
        sys.exit(124)
    sys.exit(os.waitstatus_to_exitcode(status))


main()
