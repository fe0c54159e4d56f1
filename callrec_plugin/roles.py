"""Role names, purposes and actions: the vocabulary of the policy."""

OWNER = "owner"
MANAGER = "manager"
COMPLAINT_HANDLER = "complaint_handler"
TRAINER = "trainer"
STAFF = "staff"
DPO = "dpo"

ROLES = frozenset({OWNER, MANAGER, COMPLAINT_HANDLER, TRAINER, STAFF, DPO})
MONITORING_ROLES = frozenset({OWNER, MANAGER})

ROLE_LABELS = {
    OWNER: "Practice owner",
    MANAGER: "Practice manager",
    COMPLAINT_HANDLER: "Complaint handler",
    TRAINER: "Trainer",
    STAFF: "Staff",
    DPO: "Data protection lead",
}

# The policy's five purposes, the only ones for which audio may be retrieved.
PURPOSES = {
    "compliance": "Checking compliance with regulatory procedures",
    "training": "Training of team members in call handling",
    "complaint": "Investigating a complaint",
    "spot_check": "Management spot check of customer service standards",
    "safety_crime": "Threat to staff health and safety, or prevention or detection of crime",
}


class Action:
    VIEW_METADATA = "view_metadata"
    PLAY = "play"
    DOWNLOAD = "download"
    ATTACH = "attach"
    HOLD = "hold"
    RELEASE = "release"
    EXPORT = "export"
    ASSESS = "assess"
    APPROVE_TRAINING = "approve_training"
    VIEW_AUDIT = "view_audit"
    RECORD_OBJECTION = "record_objection"
    VIEW_RETENTION = "view_retention"
    VIEW_ASSESSMENTS = "view_assessments"
    CHANGE_RETENTION = "change_retention"
    MANAGE_JOBS = "manage_jobs"
    VIEW_TRAINING_LIBRARY = "view_training_library"
    VIEW_STAFF_MAPPING = "view_staff_mapping"
    VIEW_CALL_LOG = "view_call_log"
    MATCH_CALL = "match_call"
    REDACT = "redact"  # silence a range of a stored call (card details), crypto-shredding the original
    FLAG_CARD_PAYMENT = "flag_card_payment"


# Actions that retrieve audio: they need a purpose whose precondition is met.
AUDIO_ACTIONS = frozenset({Action.PLAY, Action.DOWNLOAD})
