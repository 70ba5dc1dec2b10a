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

# The defects go into this fixture, not into terraform/'s own files, so that the tests do not
# break when those change. A dynamic block and a heredoc, which the checker must see through:
# the heredoc's `not_an_argument = 1` is text, not an argument.
FIXTURE = """
resource "aws_sqs_queue" "fixture" {
  name                       = "fixture"
  visibility_timeout_seconds = 60
}

data "aws_iam_policy_document" "fixture" {
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fixture.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::123456789012:root"]
    }
  }
}

resource "aws_sqs_queue_policy" "fixture" {
  queue_url = aws_sqs_queue.fixture.id
  policy    = data.aws_iam_policy_document.fixture.json
}

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


def run_checker(terraform_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECKER), str(terraform_dir)], capture_output=True, text=True)


class TerraformSchemaCheck(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.terraform = self.tmp / "terraform"
        shutil.copytree(REPO_ROOT / "terraform", self.terraform)
        (self.terraform / "fixture.tf").write_text(FIXTURE)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def edit(self, file: str, old: str, new: str) -> None:
        path = self.terraform / file
        text = path.read_text()
        self.assertEqual(text.count(old), 1, f"{file} has no single {old!r}")
        path.write_text(text.replace(old, new))

    def assert_fails_with(self, *messages: str) -> None:
        result = run_checker(self.terraform)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        for message in messages:
            self.assertIn(message, result.stderr)

    def test_the_real_terraform_passes(self):
        result = run_checker(REPO_ROOT / "terraform")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("resource and data blocks", result.stdout)

    def test_the_fixture_passes(self):
        result = run_checker(self.terraform)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_a_misspelled_argument_fails(self):
        self.edit("fixture.tf", "  visibility_timeout_seconds = 60", "  visibilty_timeout_seconds = 60")
        self.assert_fails_with(
            'terraform/fixture.tf:4: aws_sqs_queue.fixture: unknown argument "visibilty_timeout_seconds" '
            '(did you mean "visibility_timeout_seconds"?)'
        )

    def test_a_misspelled_nested_argument_fails(self):
        self.edit("fixture.tf", "      identifiers = [", "      identifers = [")
        self.assert_fails_with(
            'data.aws_iam_policy_document.fixture.statement.principals: unknown argument "identifers"',
            'data.aws_iam_policy_document.fixture.statement.principals: missing required argument "identifiers"',
        )

    def test_a_missing_required_argument_fails(self):
        self.edit("fixture.tf", "  queue_url = aws_sqs_queue.fixture.id\n", "")
        self.assert_fails_with('aws_sqs_queue_policy.fixture: missing required argument "queue_url"')

    def test_an_unknown_type_and_block_fail(self):
        self.edit("fixture.tf", 'resource "aws_sqs_queue_policy" "fixture"', 'resource "aws_sqs_queues_policy" "fixture"')
        self.edit("fixture.tf", "    principals {", "    principal {")
        self.assert_fails_with(
            'aws_sqs_queues_policy.fixture: unknown resource type "aws_sqs_queues_policy"',
            'data.aws_iam_policy_document.fixture.statement: unknown block "principal" (did you mean "principals"?)',
        )

    def test_dynamic_blocks_and_heredocs_are_read(self):
        self.edit("fixture.tf", '      type = "S"', '      tpye = "S"')
        self.assert_fails_with(
            'aws_dynamodb_table.fixture.attribute: unknown argument "tpye" (did you mean "type"?)',
            'aws_dynamodb_table.fixture.attribute: missing required argument "type"',
        )


if __name__ == "__main__":
    unittest.main(verbosity=2)
