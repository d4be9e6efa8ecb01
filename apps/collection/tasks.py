"""Celery tasks of the collection app: thin, ids in, a service does the work."""

from celery import shared_task

from apps.collection.demo import demo_sample


@shared_task(
    name="collection.demo_sample",
    queue="gpu",
    acks_late=True,
    autoretry_for=(OSError,),
    max_retries=2,
    retry_backoff=True,
)
def demo_sample_task(project_id: int, policy_id: int) -> int:
    return demo_sample(project_id=project_id, policy_id=policy_id)
