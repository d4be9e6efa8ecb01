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


@shared_task(name="collection.import_run", acks_late=True, max_retries=0)
def import_run_task(job_id: int) -> int | None:
    """Import an uploaded file (apps/collection/uploads.py); a job taken or gone is skipped."""
    from apps.collection.uploads import import_run

    job = import_run(job_id=job_id)
    return job.pk if job else None
