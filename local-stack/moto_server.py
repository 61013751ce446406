"""moto's server from the project's venv, with a race in its SQS closed and two linear
costs made constant.

The local stack runs this instead of `moto_server` (local-stack/src/moto.rs). moto 5.2.5
answers ReceiveMessage by checking each message it returns against the queue's
retention period through `get_queue_attributes`, which computes every attribute of
the queue four times over, the approximate message counts included: each count is a
scan of every message in the queue, with two datetime conversions per message. With a
thousand requests waiting in the work queue that is tens of milliseconds of one
Python process per message received, and moto, not the worker, sets the pace of a run
(BENCHMARKS.md, "Pacing"). The replacements compute the same values directly:

- the retention check reads the queue's `message_retention_period` and compares as
  moto does (a message is kept while sent + retention > now);
- a message's `visible` and `delayed` compare against `time.time()`, the same clock
  moto reads through `utcnow()`, in the same milliseconds.

The race: DeleteMessage rebuilds the queue's list of messages without the lock that
SendMessage appends under, so a message sent while another is deleted can vanish
after moto acknowledged it (local-stack/tests/moto_sqs.rs; a benchmark run with 10
function processes lost 8 requests that way). Deletes now hold that lock.

Nothing else of moto changes, and requests, answers and errors are moto's own.
"""

import time

from moto.server import main
from moto.sqs import models


def _within_retention(self, queue_name, message):
    queue = self.get_queue(queue_name)
    return queue.message_retention_period + message.sent_timestamp / 1000 > time.time()


models.SQSBackend.is_message_valid_based_on_retention_period = _within_retention
models.Message.visible = property(lambda message: time.time() * 1000 > message.visible_at)
models.Message.delayed = property(lambda message: time.time() * 1000 < message.delayed_until)

_delete_message = models.Queue.delete_message


def _delete_message_under_lock(self, receipt_handle):
    # The queue's Condition wraps a re-entrant lock: add_message takes the same one.
    with self._messages_lock:
        _delete_message(self, receipt_handle)


models.Queue.delete_message = _delete_message_under_lock

if __name__ == "__main__":
    main()
