"""DynamoDB in the local AWS: moto's, plus the per-item atomicity DynamoDB guarantees.

    atomicity.py    DynamoDBItemAtomicity: one DynamoDB request at a time in front of moto
    fastpath.py     DirectDynamoDB: a DynamoDB call handed to moto's handler without moto's Flask app

The speed-ups of moto's DynamoDB (expression parses, the serializer) are patches (patches/speedups.py).
Nothing here raises an exception of its own: moto's DynamoDB errors are its answers, as on DynamoDB.
"""
