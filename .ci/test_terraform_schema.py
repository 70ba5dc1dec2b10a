#!/usr/bin/env python3
"""Negative tests of .ci/terraform_schema.py: each runs it on a temporary copy of terraform/ with
one defect put in, and expects it to fail with the message that names the defect.

Usage: python .ci/test_terraform_schema.py (with the venv's python: it needs checkov's hcl2)
"""

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKER = REPO_ROOT / ".ci" / "terraform_schema.py"

# A dynamic block and a heredoc, which the checker must see through: the heredoc's
# `not_an_argument = 1` is text, not an argument.
DYNAMIC_AND_HEREDOC = """
resource "aws_dynamodb_table" "fixture" {
  name         = "fixture"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"

  dynamic "attribute" {
    for_each = ["pk", "sk"]
    content {
      name = attribute.value
      type = "S"
    }
  }
}

resource "aws_iam_policy" "fixture" {
  policy = <<-EOT
    not_an_argument = 1
  EOT
}
"""


# The fan-out queue's policy document: the edits of a nested block are made in it (the DLQ's
# has the same blocks).
FANOUT_QUEUE_POLICY = 'data "aws_iam_policy_document" "fanout_queue" {'


def run_checker(terraform_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECKER), str(terraform_dir)], capture_output=True, text=True)


class TerraformSchemaCheck(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.terraform = self.tmp / "terraform"
        shutil.copytree(REPO_ROOT / "terraform", self.terraform)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def edit(self, file: str, old: str, new: str, within: str = "") -> int:
        """Replaces `old`, which must occur once (after `within`, itself once, when given) in
        terraform/`file`; returns the line it is on."""
        path = self.terraform / file
        text = path.read_text()
        start = 0
        if within:
            self.assertEqual(text.count(within), 1, f"terraform/{file} changed: update this test's anchor {within!r}")
            start = text.index(within)
        head, tail = text[:start], text[start:]
        block = tail.split("\n}\n", 1)[0] if within else tail
        self.assertEqual(block.count(old), 1, f"terraform/{file} changed: update this test's edit of {old!r}")
        line = head.count("\n") + tail[: tail.index(old)].count("\n") + 1
        path.write_text(head + tail.replace(old, new, 1))
        return line

    def assert_fails_with(self, *messages: str) -> None:
        result = run_checker(self.terraform)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        for message in messages:
            self.assertIn(message, result.stderr)

    def test_the_real_terraform_passes(self):
        result = run_checker(REPO_ROOT / "terraform")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("resource and data blocks", result.stdout)

    def test_a_misspelled_argument_fails(self):
        line = self.edit("queue.tf", "  visibility_timeout_seconds =", "  visibilty_timeout_seconds =")
        self.assert_fails_with(
            f'terraform/queue.tf:{line}: aws_sqs_queue.fanout: unknown argument "visibilty_timeout_seconds" '
            '(did you mean "visibility_timeout_seconds"?)'
        )

    def test_a_misspelled_nested_argument_fails(self):
        self.edit("queue.tf", '      identifiers = ["*"]', '      identifers = ["*"]', within=FANOUT_QUEUE_POLICY)
        self.assert_fails_with(
            'data.aws_iam_policy_document.fanout_queue.statement.principals: unknown argument "identifers"',
            'data.aws_iam_policy_document.fanout_queue.statement.principals: missing required argument "identifiers"',
        )

    def test_a_missing_required_argument_fails(self):
        self.edit("queue.tf", "  queue_url = aws_sqs_queue.fanout.id\n", "")
        self.assert_fails_with('aws_sqs_queue_policy.fanout: missing required argument "queue_url"')

    def test_an_unknown_type_and_block_fail(self):
        self.edit("queue.tf", 'resource "aws_sqs_queue_policy" "fanout"', 'resource "aws_sqs_queues_policy" "fanout"')
        self.edit("queue.tf", "    principals {", "    principal {", within=FANOUT_QUEUE_POLICY)
        self.assert_fails_with(
            'aws_sqs_queues_policy.fanout: unknown resource type "aws_sqs_queues_policy"',
            'data.aws_iam_policy_document.fanout_queue.statement: unknown block "principal" (did you mean "principals"?)',
        )

    def test_dynamic_blocks_and_heredocs_are_read(self):
        (self.terraform / "fixture.tf").write_text(DYNAMIC_AND_HEREDOC)
        result = run_checker(self.terraform)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

        self.edit("fixture.tf", '      type = "S"', '      tpye = "S"')
        self.assert_fails_with(
            'aws_dynamodb_table.fixture.attribute: unknown argument "tpye" (did you mean "type"?)',
            'aws_dynamodb_table.fixture.attribute: missing required argument "type"',
        )


if __name__ == "__main__":
    unittest.main(verbosity=2)
