"""Batches of numpy arrays from a dataset, shared by the three backends.

Each backend only converts the arrays to its tensors, so the data order and
content are the same in PyTorch, PaddlePaddle and MindSpore. A batch is a
tuple with one stacked array per item field: ``(x float32 B x C x T x H x W,
y int64 B)`` for VideoDataset, plus ``video_index int64 B`` for EvalDataset.

The order of epoch ``e`` is ``np.random.default_rng([seed, e]).permutation``
(or 0..N-1 without shuffle). In data-parallel training each of ``world_size``
processes gets its share of every global batch of ``batch_size * world_size``
(`rank_share`), so N processes with batch B see exactly the samples, in the
same steps, of one process with batch N x B. Training keeps the step counts
equal (each step is a collective); validation (``equal_steps=False``) keeps
every sample instead. A clip whose frames cannot be read is replaced (training) or
left out (evaluation) by the dataset (core.datasets), named on stderr at the end of
the epoch, and the epoch stops once more than ``max_bad_clips`` (a fraction) of its
clips were unreadable. Worker processes load whole batches; results come back
in order, at most ``prefetch`` batches per worker ahead of the consumer. The
workers start on the first iteration (or `start()`) and are reused by later
epochs; `close()` (or the end of the program) stops them.

A worker sends a batch's arrays as raw bytes over its own pipe, received straight
into the consumer's arrays. multiprocessing.Pool pickled them instead: five
copies of every batch, ~60 ms of the consumer's CPU per 19 MB training batch,
a sixth of a narrow ResNet-10's step (bench/end_to_end.py).
"""
import multiprocessing
import os
import signal
import sys
import traceback
import weakref

import numpy as np
from tqdm import tqdm

from core.frames import FrameError
from core.names import printable


def collate(items):
    """Stack a list of item tuples field by field: arrays -> float32, ints -> int64."""
    fields = []
    for values in zip(*items):
        if isinstance(values[0], np.ndarray):
            shapes = {v.shape for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot batch clips of different shapes {sorted(shapes)} "
                                 "(e.g. inference_crop nocrop on videos of different sizes: use batch size 1)")
            fields.append(np.stack(values).astype(np.float32, copy=False))
        else:
            fields.append(np.asarray(values, dtype=np.int64))
    return tuple(fields)


def load_batch(dataset, epoch, indices):
    """(batch, or None when every item was left out; [(video index, problem), ...] of the unreadable clips).

    A dataset with a `load(index, skipped)` method (core.datasets) replaces or leaves out unreadable clips
    and names them in `skipped`; any other sequence is indexed as is."""
    dataset.set_epoch(epoch)
    skipped = []
    load = getattr(dataset, "load", None)
    if load is None:
        return collate([dataset[i] for i in indices]), skipped
    items = [item for item in (load(i, skipped) for i in indices) if item is not None]
    return (collate(items) if items else None), skipped


def _worker_main(connection, dataset, parent):
    """Load the batches asked for on `connection`: for each, a header (the arrays' dtypes and shapes, the
    skipped clips) then each array's bytes; or ("error", exception, traceback text)."""
    # The parent's handlers are not the worker's: Paddle's SIGTERM handler, inherited, can hang instead of
    # exiting (see _Workers.stop), and multiprocessing stops daemonic children at exit with SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import cv2
    # The workers are the parallelism; OpenCV threads would only compete with them.
    cv2.setNumThreads(1)
    try:
        while True:
            # Other processes forked by the consumer hold copies of its end of the pipe, so its death may
            # never close it: a worker whose parent is gone stops by itself.
            while not connection.poll(1.0):
                if os.getppid() != parent:
                    return
            epoch, indices = connection.recv()
            try:
                batch, skipped = load_batch(dataset, epoch, indices)
            except Exception as error:
                _send_error(connection, error)
                continue
            arrays = None if batch is None else [np.ascontiguousarray(array) for array in batch]
            connection.send(("batch", arrays and [(a.dtype.str, a.shape) for a in arrays], skipped))
            for array in arrays or ():
                connection.send_bytes(array.reshape(-1).view(np.uint8))
    except (KeyboardInterrupt, EOFError, OSError):  # Ctrl+C, or the consumer closed the loader: it reports
        return


def _send_error(connection, error):
    text = traceback.format_exc()
    try:
        connection.send(("error", error, text))
    except Exception:  # an exception that does not pickle
        connection.send(("error", RuntimeError(f"{type(error).__name__}: {error}"), text))


class WorkerTraceback(Exception):
    """Where in a loader worker the exception it raises was raised."""


class WorkerDied(RuntimeError):
    """A loader worker ended without answering (e.g. killed by the kernel for memory)."""


class TooManyBadClips(FrameError):
    """More clips of an epoch could not be read than `max_bad_clips` allows."""


def rank_share(indices, rank, world_size):
    """Process `rank`'s part of one global batch: the rank-th of `world_size` contiguous slices whose
    sizes differ by at most one (np.array_split), so that together the processes see the whole batch."""
    return np.array_split(np.asarray(indices), world_size)[rank].tolist()


class BatchLoader:
    """Batches of the epoch set by set_epoch(); with world_size > 1, this process's share of them.

    batch_size is per process. With equal_steps (training: every step is a collective, so every process
    must take as many steps as the others) a final global batch with fewer samples than processes is
    left out. Without it (validation, whose steps have no collective) every sample is kept, each in one
    process, and a process whose share of the final batch is empty takes one step less.
    """

    def __init__(self, dataset, batch_size, shuffle=False, seed=0, n_workers=0, drop_last=False, prefetch=2,
                 rank=0, world_size=1, equal_steps=True, max_bad_clips=0.0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of the {world_size} processes")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.n_workers = n_workers
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.rank = rank
        self.world_size = world_size
        self.equal_steps = equal_steps
        self.max_bad_clips = max_bad_clips
        self.skipped = []  # (video index, problem) of each clip of the current epoch that could not be read
        self.epoch = 0
        self._workers = None
        self._started = []  # (epoch, indices) submitted by start()

    def set_epoch(self, epoch):
        """Select the order (if shuffling) and the random sampling of epoch `epoch`."""
        self.epoch = epoch

    def __len__(self):
        full, rest = divmod(len(self.dataset), self.batch_size * self.world_size)
        # rank_share gives a final batch of `rest` samples to the first `rest` processes (one each if
        # rest < world_size); it counts if it reaches the last process, or with unequal steps this one.
        needed_by = self.world_size - 1 if self.equal_steps else self.rank
        return full + int(not self.drop_last and rest > needed_by)

    def batch_indices(self):
        """The dataset indices of this process's batches in the current epoch."""
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        size = self.batch_size * self.world_size
        return [rank_share(order[i:i + size], self.rank, self.world_size) for i in range(0, len(self) * size, size)]

    def __iter__(self):
        batches = self.batch_indices()
        self.skipped = []
        limit = self.max_bad_clips * sum(len(indices) for indices in batches)
        for batch, skipped in self._load(batches):
            self.skipped += skipped
            if len(self.skipped) > limit:
                raise TooManyBadClips(f"epoch {self.epoch}: {len(self.skipped)} unreadable clips, more than "
                                      f"max_bad_clips {self.max_bad_clips} of {sum(map(len, batches))} "
                                      f"(first: {printable(self.skipped[0][1])})")
            if batch is not None:
                yield batch
        if self.skipped:
            tqdm.write(f"epoch {self.epoch}: skipped {len(self.skipped)} unreadable clips of "
                       f"{sum(map(len, batches))}:", file=sys.stderr)
            for _, problem in self.skipped:
                tqdm.write(f"  skipped: {printable(problem)}", file=sys.stderr)

    def start(self):
        """Start the workers and the current epoch's first batches now (e.g. while the framework is imported).
        An iteration of that epoch takes them up; one of another epoch drops them."""
        if self.n_workers == 0 or self._started:
            return
        workers = self._start_workers()
        self._started = [(self.epoch, indices) for indices in self.batch_indices()[:self.n_workers * self.prefetch]]
        for task in self._started:
            workers.submit(task)

    def _load(self, batches):
        if self.n_workers == 0:
            for indices in batches:
                yield load_batch(self.dataset, self.epoch, indices)
            return
        workers = self._start_workers()
        tasks = [(self.epoch, indices) for indices in batches]
        started, self._started = self._started, []
        ahead = self.n_workers * self.prefetch
        finished = False
        try:
            if tasks[:len(started)] != started:  # started for another epoch (a resumed run)
                for _ in started:
                    workers.receive()
                started = []
            for task in tasks[len(started):ahead]:
                workers.submit(task)
            for k in range(len(tasks)):
                result = workers.receive()
                if k + ahead < len(tasks):
                    workers.submit(tasks[k + ahead])
                yield result
            finished = True
        finally:
            if not finished:  # the consumer stopped early: the workers' pipes still hold batches of this epoch
                self.close()

    def _start_workers(self):
        if self._workers is None:
            self._workers = _Workers(self.dataset, self.n_workers)
            self._finalizer = weakref.finalize(self, self._workers.stop)
        return self._workers

    def close(self):
        """Stop the worker processes (a later iteration starts new ones)."""
        if self._workers is not None:
            self._finalizer()
            self._workers = None
        self._started = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Workers:
    """Worker processes with a pipe each; batch k goes to worker k % n, so results come back in order."""

    def __init__(self, dataset, n_workers):
        # fork shares the dataset without pickling it; the workers only use numpy and OpenCV,
        # never the deep-learning framework the parent may have imported.
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
        import cv2
        # OpenCV's thread pool must not be running across the fork (e.g. after TV-L1 in this process): the
        # children's first OpenCV call, their setNumThreads, would wait forever on its copied locks.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        self.connections, self.processes = [], []
        try:
            for _ in range(n_workers):
                ours, theirs = context.Pipe()
                process = context.Process(target=_worker_main, args=(theirs, dataset, os.getpid()),
                                          daemon=True)
                process.start()
                theirs.close()  # only the worker holds its end: its death ends our reads (EOFError)
                self.connections.append(ours)
                self.processes.append(process)
        finally:
            cv2.setNumThreads(threads)
        self.submitted = self.received = 0

    def submit(self, task):
        self.connections[self.submitted % len(self.connections)].send(task)
        self.submitted += 1

    def receive(self):
        """The next batch in submission order: (arrays or None, skipped clips)."""
        index = self.received % len(self.connections)
        connection = self.connections[index]
        try:
            message = connection.recv()
            if message[0] == "error":
                _, error, text = message
                raise error from WorkerTraceback(text)
            _, layout, skipped = message
            arrays = None if layout is None else [np.empty(shape, dtype) for dtype, shape in layout]
            for array in arrays or ():
                connection.recv_bytes_into(array.reshape(-1).view(np.uint8))
        except EOFError:
            process = self.processes[index]
            process.join(1)
            how = (f"was killed by signal {-process.exitcode}" if process.exitcode and process.exitcode < 0
                   else f"exited with code {process.exitcode}")
            raise WorkerDied(f"loader worker {index} (pid {process.pid}) {how}; out of memory? (a smaller "
                             "batch_size or n_threads needs less)") from None
        self.received += 1
        return (None if arrays is None else tuple(arrays)), skipped

    def stop(self):
        # SIGKILL, not SIGTERM: a worker inherits the parent's signal handlers, and Paddle's SIGTERM handler,
        # run inside the malloc it interrupts (e.g. a worker still starting), calls malloc and never returns.
        # A worker may be mid-batch; frame_cache entries are renamed into place, so killing it loses nothing.
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.join()
        for connection in self.connections:
            connection.close()
