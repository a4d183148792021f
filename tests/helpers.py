"""Builders shared by several test modules."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch


class MirrorServer:
    """Serves a folder; `mode` can make the next responses corrupt or cut short."""

    def __init__(self, root: Path):
        self.root, self.mode, self.requests, self.authorization = root, "good", [], []
        self.headers: dict[str, str] = {}  # sent with every good answer (e.g. a hub's X-Repo-Commit)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                server.authorization.append(self.headers.get("Authorization"))
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                if server.mode == "corrupt":
                    body = body[:-10] + b"X" * 10
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if server.mode in ("truncate", "truncate-once"):  # promise the whole file, send a third, hang up
                    if server.mode == "truncate-once":
                        server.mode = "good"
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def linked_mirror(mirror: Path, dest: Path, *, missing: tuple[str, ...] = (),
                  corrupted: tuple[str, ...] = ()) -> Path:
    """The data mirror rebuilt as links to its files, some left out and some with one byte flipped."""
    for path in mirror.rglob("*"):
        rel = path.relative_to(mirror).as_posix()
        if not path.is_file() or rel in missing:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in corrupted:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            target.write_bytes(bytes(data))
        else:
            target.symlink_to(path)
    return dest


def naive_cut_loss(logits, targets, mis_logits, mis_targets, negative, threshold, alpha, gamma, combine,
                   use_l1=True, use_align_n_mle=True, detection=True):
    """The released algorithm written out literally in float64 (a full softmax, a loop over examples and
    tokens), with Table 4's switches: each removes exactly its term."""
    logits, mis_logits = logits.double(), mis_logits.double()
    probs, mis_probs = torch.softmax(logits, -1), torch.softmax(mis_logits, -1)
    losses, k = [], 0
    for i in range(logits.shape[0]):
        positions = [t for t in range(targets.shape[1]) if targets[i, t] != -100]
        p_first = torch.stack([probs[i, t, targets[i, t]] for t in positions])
        nll = -torch.log(p_first).sum() / len(positions)
        if not negative[i]:
            losses.append(nll)
            continue
        mis_positions = [t for t in range(mis_targets.shape[1]) if mis_targets[k, t] != -100]
        p_mis = torch.stack([mis_probs[k, t, mis_targets[k, t]] for t in mis_positions])
        k += 1
        terms = []
        for a, b in zip(p_first, p_mis):
            if not detection or (a / b).item() > threshold:
                one_minus = 1 - b
                if one_minus.item() == 0:
                    one_minus = one_minus + 1e-5
                terms.append(-alpha * a.detach() ** gamma * torch.log(one_minus))
            else:
                terms.append(-torch.log(b))
        ul = torch.stack(terms).sum() / len(terms)
        if not use_l1:
            losses.append(nll)
        elif not use_align_n_mle:
            losses.append(ul)
        else:
            losses.append((nll + ul) / 2 if combine == "mean" else nll + ul)
    return torch.stack(losses).mean()


def make_batch(kinds, vocab=37, length=9, mis_length=7, dtype=torch.float32, seed=0, sharp=3.0):
    """kinds: string of 'p' (positive) and 'n' (negative). Responses sit at the end of each row, with padding
    after them; the Misalign rows hold the same response tokens after a prompt of another length."""
    g = torch.Generator().manual_seed(seed)
    batch = len(kinds)
    targets = torch.full((batch, length), -100)
    negative = torch.tensor([c == "n" for c in kinds])
    n_neg = int(negative.sum())
    mis_targets = torch.full((n_neg, mis_length), -100)
    k = 0
    for i, c in enumerate(kinds):
        n_resp = int(torch.randint(1, min(length, mis_length) - 1, (1,), generator=g))
        start = int(torch.randint(0, length - n_resp, (1,), generator=g))
        response = torch.randint(0, vocab, (n_resp,), generator=g)
        targets[i, start:start + n_resp] = response
        if c == "n":
            mstart = int(torch.randint(0, mis_length - n_resp + 1, (1,), generator=g))
            mis_targets[k, mstart:mstart + n_resp] = response
            k += 1
    logits = (torch.randn(batch, length, vocab, generator=g) * sharp).to(dtype)
    mis_logits = (torch.randn(n_neg, mis_length, vocab, generator=g) * sharp).to(dtype)
    return logits, targets, mis_logits, mis_targets, negative
