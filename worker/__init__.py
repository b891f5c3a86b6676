"""The workers: the enrolment consumer (worker/enrolment_consumer.py) and the Celery application.

`celery -A worker worker` and `celery -A worker beat` find the Celery application
through worker/celery.py, so importing this package alone (as the enrolment
consumer does) loads no Celery.
"""
