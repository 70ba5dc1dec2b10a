# terraform workspace new prod   (or: terraform workspace select prod)
# terraform apply -var-file=examples/prod.tfvars

aws_region = "eu-west-1"

log_retention_days        = 365
point_in_time_recovery    = true
table_deletion_protection = true

log_level                   = "info"
api_execution_logging_level = "ERROR"

throttling_burst_limit             = 2000
throttling_rate_limit              = 5000
sendmessage_throttling_burst_limit = 500
sendmessage_throttling_rate_limit  = 200

worker_memory_mb           = 1024
worker_timeout_seconds     = 120
worker_batch_size          = 10
worker_maximum_concurrency = 50
fanout_concurrency         = 512

manage_api_gateway_account = true

alarm_email                      = "oncall@example.com"
alarm_oldest_message_age_seconds = 60

tags = {
  Environment = "prod"
}
