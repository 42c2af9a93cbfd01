# Analytics warehouse: attribute-based access control.
#
# Input:
#   subject       {"id", "email", "department", "clearance" (0-3), "employment_start" (RFC 3339)}
#   resource      {"id", "classification", "owner_department"}
#   action        "read" | "query" | "export"
#   columns       columns the query touches (optional)
#   request_time  RFC 3339 timestamp set by the gateway (the policy never reads the clock)
#   source_ip     client address as seen by the gateway
#
# Levels (data.analytics.classification_levels): public 0, internal 1,
# confidential 2, restricted 3.
#   internal+      office or VPN network
#   confidential+  owning department only, business hours (UTC), past probation,
#                  no external (contractor/partner) accounts
#   restricted     on-site office network only (not VPN)
# Columns whose name contains a PII marker need clearance 2 and are never exported.
#
# Every negation below applies to a rule reference: OPA evaluates references
# found inside a negated call's arguments outside the negation, so a form like
# `not clearance >= 2` would be undefined, not true, when clearance is missing.
package analytics.access

default allow := false

allow if {
	action_permitted
	classification_known
	clearance_sufficient
	department_permitted
	network_permitted
	time_permitted
	tenure_permitted
	external_permitted
	pii_permitted
}

subject := input.subject

resource := input.resource

classification := lower(resource.classification)

required_level := data.analytics.classification_levels[classification]

clearance := subject.clearance if is_number(subject.clearance)

action_permitted if input.action in data.analytics.actions

classification_known if is_number(required_level)

clearance_sufficient if clearance >= required_level

department_permitted if required_level < 2

department_permitted if lower(subject.department) == lower(resource.owner_department)

# Names of the configured networks that contain the client address.
matching_networks := [name |
	some name, network in data.analytics.networks
	net.cidr_contains(network.cidr, input.source_ip)
]

from_office_network if count(matching_networks) > 0

onsite if {
	some name in matching_networks
	data.analytics.networks[name].onsite
}

network_permitted if required_level == 0

network_permitted if {
	required_level in {1, 2}
	from_office_network
}

network_permitted if onsite

rfc3339_pattern := `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`

request_ns := time.parse_rfc3339_ns(input.request_time) if {
	regex.match(rfc3339_pattern, input.request_time)
}

# Business hours are evaluated in UTC.
business_hours if {
	hours := data.analytics.business_hours
	day := time.weekday(request_ns)
	day in hours.days
	clock := time.clock(request_ns)
	clock[0] >= hours.start_hour
	clock[0] < hours.end_hour
}

time_permitted if required_level < 2

time_permitted if business_hours

ns_per_day := ((24 * 60) * 60) * 1000000000

tenure_permitted if required_level < 2

tenure_permitted if {
	start_ns := time.parse_rfc3339_ns(subject.employment_start)
	request_ns - start_ns >= data.analytics.probation_days * ns_per_day
}

external_subject if strings.any_suffix_match(lower(subject.email), data.analytics.external_email_domains)

external_permitted if not external_subject

external_permitted if required_level <= 1

pii_columns contains column if {
	some column in input.columns
	some marker in data.analytics.pii_markers
	contains(lower(column), marker)
}

pii_permitted if count(pii_columns) == 0

pii_cleared if clearance >= 2

pii_permitted if {
	input.action != "export"
	pii_cleared
}

reasons contains msg if {
	not action_permitted
	msg := sprintf("action %v is not permitted", [object.get(input, "action", "<missing>")])
}

reasons contains "resource classification is missing or unknown" if {
	not classification_known
}

reasons contains msg if {
	classification_known
	not clearance_sufficient
	msg := sprintf("clearance is below level %d required for %s data", [required_level, classification])
}

reasons contains msg if {
	required_level >= 2
	not department_permitted
	owner := object.get(resource, "owner_department", "<unknown>")
	msg := sprintf("%s data is restricted to its owning department (%s)", [classification, owner])
}

reasons contains "internal and confidential data require an office or VPN network" if {
	required_level in {1, 2}
	not from_office_network
}

reasons contains "restricted data requires an on-site office network" if {
	required_level == 3
	not onsite
}

reasons contains "request_time is missing or not an RFC 3339 timestamp" if {
	required_level >= 2
	not request_ns
}

reasons contains msg if {
	required_level >= 2
	request_ns
	not business_hours
	hours := data.analytics.business_hours
	first_day := hours.days[0]
	last_index := count(hours.days) - 1
	last_day := hours.days[last_index]
	window := sprintf("%s to %s, %d:00-%d:00 UTC", [first_day, last_day, hours.start_hour, hours.end_hour])
	msg := sprintf("%s data is only available %s", [classification, window])
}

reasons contains msg if {
	required_level >= 2
	request_ns
	not tenure_permitted
	msg := sprintf("%s data requires %d days of employment", [classification, data.analytics.probation_days])
}

reasons contains "external accounts may only access public and internal data" if {
	classification_known
	not external_permitted
}

reasons contains msg if {
	input.action == "export"
	count(pii_columns) > 0
	msg := sprintf("exporting PII columns is not permitted: %s", [concat(", ", sort(pii_columns))])
}

reasons contains "PII columns require clearance level 2" if {
	input.action != "export"
	count(pii_columns) > 0
	not pii_cleared
}
