#!/usr/bin/env bash
# A SageMaker workflow written with the AWS CLI alone, as shell users write it: code and model to
# S3, a training job with the Hugging Face training image, its log read from CloudWatch, its model
# deployed and invoked with `aws sagemaker-runtime invoke-endpoint`, and all of it deleted.
#
#   train_and_invoke.sh SOURCE_DIR MODEL_FOLDER WORK_FOLDER
set -euo pipefail
source_dir=$1 model_folder=$2 work=$3
name=cli-workflow-$(date +%s)
bucket=sagetwin-$name
registry=763104351884.dkr.ecr.us-east-1.amazonaws.com
versions=1.13.1-transformers4.26.0-gpu-py39-cu117-ubuntu20.04

until_status() {  # until_status WANTED COMMAND...: poll each second (the CLI's waiters sleep 30-120 s)
  local wanted=$1 status; shift
  for _ in $(seq 900); do
    status=$("$@")
    if [ "$status" = "$wanted" ]; then return 0; fi
    case $status in Failed|Stopped) echo "status $status" >&2; return 1 ;; esac
    sleep 1
  done
  echo "still $status after 900 s" >&2
  return 1
}

aws s3 mb "s3://$bucket"
tar -czf "$work/sourcedir.tar.gz" -C "$source_dir" .
aws s3 cp --only-show-errors "$work/sourcedir.tar.gz" "s3://$bucket/code/sourcedir.tar.gz"
aws s3 cp --only-show-errors --recursive "$model_folder" "s3://$bucket/model/"
aws s3 ls "s3://$bucket/model/"
role=$(aws iam get-role --role-name SageMakerExecutionRole --query Role.Arn --output text)

cat > "$work/job.json" <<JOB
{"TrainingJobName": "$name", "RoleArn": "$role",
 "AlgorithmSpecification": {"TrainingImage": "$registry/huggingface-pytorch-training:$versions",
                            "TrainingInputMode": "File"},
 "HyperParameters": {"epochs": "2", "sagemaker_program": "\"train.py\"",
                     "sagemaker_submit_directory": "\"s3://$bucket/code/sourcedir.tar.gz\""},
 "InputDataConfig": [{"ChannelName": "model", "DataSource": {"S3DataSource": {
     "S3DataType": "S3Prefix", "S3Uri": "s3://$bucket/model/", "S3DataDistributionType": "FullyReplicated"}}}],
 "OutputDataConfig": {"S3OutputPath": "s3://$bucket/output"},
 "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
 "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
JOB
aws sagemaker create-training-job --cli-input-json "file://$work/job.json"
until_status Completed aws sagemaker describe-training-job --training-job-name "$name" \
  --query TrainingJobStatus --output text
aws sagemaker list-training-jobs --name-contains "$name" \
  --query "TrainingJobSummaries[].[TrainingJobName,TrainingJobStatus]" --output text
stream=$(aws logs describe-log-streams --log-group-name /aws/sagemaker/TrainingJobs \
  --log-stream-name-prefix "$name/" --query "logStreams[0].logStreamName" --output text)
aws logs get-log-events --log-group-name /aws/sagemaker/TrainingJobs --log-stream-name "$stream" \
  --query "events[].message" --output text | tr '\t' '\n'
model_data=$(aws sagemaker describe-training-job --training-job-name "$name" \
  --query ModelArtifacts.S3ModelArtifacts --output text)

delete_all() {
  aws sagemaker delete-endpoint --endpoint-name "$name"
  aws sagemaker delete-endpoint-config --endpoint-config-name "$name"
  aws sagemaker delete-model --model-name "$name"
}
trap 'delete_all || true' EXIT
aws sagemaker create-model --model-name "$name" --execution-role-arn "$role" \
  --primary-container "Image=$registry/huggingface-pytorch-inference:$versions,ModelDataUrl=$model_data"
aws sagemaker create-endpoint-config --endpoint-config-name "$name" --production-variants \
  "VariantName=AllTraffic,ModelName=$name,InstanceType=ml.g4dn.xlarge,InitialInstanceCount=1"
aws sagemaker create-endpoint --endpoint-name "$name" --endpoint-config-name "$name"
until_status InService aws sagemaker describe-endpoint --endpoint-name "$name" --query EndpointStatus --output text
aws sagemaker-runtime invoke-endpoint --endpoint-name "$name" --content-type application/json \
  --accept application/json --body '{"inputs": "invoked from the command line"}' "$work/answer.json"
echo "ANSWER $(cat "$work/answer.json")"
trap - EXIT
delete_all
echo "ENDPOINTS LEFT $(aws sagemaker list-endpoints --query 'length(Endpoints)')"
