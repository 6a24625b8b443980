"""DynamoDB in the local AWS: moto's, plus the per-item atomicity DynamoDB guarantees.

    atomicity.py    DynamoDBItemAtomicity: one DynamoDB request at a time in front of moto

The speed-ups of moto's DynamoDB (expression parses, the serializer) are patches (patches/speedups.py).
"""
