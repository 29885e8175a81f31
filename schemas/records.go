package schemas

import (
	"time"
	"unsafe"
)

// Record is one normalized event of one dataset. The set of implementations
// is closed (*Auth, *Firewall, *IDS, *Web, *Syslog, *Quarantine): the
// unexported methods let accessors read fields by precomputed offsets
// instead of reflecting on every call.
type Record interface {
	// Dataset is the name of the record's dataset, e.g. "auth".
	Dataset() string
	// EventTime is when the event happened (Common().Timestamp).
	EventTime() time.Time
	// Common returns the fields every record carries, for in-place updates
	// (the consumer fills the lineage columns through it).
	Common() *Common

	ptr() unsafe.Pointer
	datasetIndex() int
}

// Common holds the fields every record carries: event time, host, raw line,
// parser version and the Kafka lineage columns the consumer fills in.
type Common struct {
	Timestamp      time.Time `col:"timestamp" ecs:"@timestamp" doc:"when the event happened, UTC"`
	Host           string    `col:"host_name" ecs:"host.name" lowcard:"true" doc:"host that logged the event (web: virtual host or server; ids: sensor)"`
	EventOriginal  string    `col:"event_original" ecs:"event.original" doc:"the raw log line as received (empty for quarantine, whose raw bytes are in raw)"`
	ParseVersion   uint16    `col:"parse_version" ecs:"-" doc:"schemas.Version of the code that produced the record"`
	KafkaTopic     string    `col:"kafka_topic" ecs:"-" lowcard:"true" doc:"Kafka topic the line was read from"`
	KafkaPartition int32     `col:"kafka_partition" ecs:"-" doc:"Kafka partition the line was read from"`
	KafkaOffset    int64     `col:"kafka_offset" ecs:"-" doc:"Kafka offset of the line"`
	KafkaTimestamp time.Time `col:"kafka_timestamp" ecs:"-" doc:"Kafka record timestamp, UTC"`
	IngestTime     time.Time `col:"ingest_time" ecs:"event.ingested" doc:"when the consumer processed the line, UTC"`
}

// Event outcomes (ECS event.outcome).
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeUnknown = "unknown"
)

// Auth is an authentication event: sshd, PAM and login messages.
type Auth struct {
	Base         Common
	Program      string `col:"process_name" ecs:"process.name" lowcard:"true" doc:"program that logged the line, e.g. sshd"`
	PID          int64  `col:"process_pid" ecs:"process.pid" doc:"process id, 0 when absent"`
	User         string `col:"user_name" ecs:"user.name" doc:"user the attempt was for"`
	SourceIP     string `col:"source_ip" ecs:"source.ip" doc:"client address"`
	SourcePort   uint16 `col:"source_port" ecs:"source.port" doc:"client port, 0 when absent"`
	SourceDomain string `col:"source_domain" ecs:"source.domain" doc:"client host name when logged instead of or besides the address"`
	Method       string `col:"auth_method" ecs:"system.auth.ssh.method" lowcard:"true" doc:"password, publickey, keyboard-interactive, none or empty"`
	Outcome      string `col:"event_outcome" ecs:"event.outcome" lowcard:"true" doc:"success, failure or unknown"`
	Action       string `col:"event_action" ecs:"event.action" lowcard:"true" doc:"what happened, e.g. ssh_login, invalid_user, connection_closed"`
	Reason       string `col:"event_reason" ecs:"event.reason" doc:"why, in the logger's words, when it says"`
	Count        int64  `col:"event_count" ecs:"-" doc:"times the message was logged (sshd 'message repeated N times'), 1 otherwise"`
}

// Firewall is a packet filter decision (netfilter, ufw, nftables) or a flow
// summary.
type Firewall struct {
	Base            Common
	Action          string `col:"event_action" ecs:"event.action" lowcard:"true" doc:"allow, deny, drop, reject or flow"`
	Transport       string `col:"network_transport" ecs:"network.transport" lowcard:"true" doc:"lower-case IP protocol: tcp, udp, icmp, ..."`
	NetworkType     string `col:"network_type" ecs:"network.type" lowcard:"true" doc:"ipv4 or ipv6"`
	SourceIP        string `col:"source_ip" ecs:"source.ip" doc:"source address"`
	SourcePort      uint16 `col:"source_port" ecs:"source.port" doc:"source port, 0 when absent"`
	DestinationIP   string `col:"destination_ip" ecs:"destination.ip" doc:"destination address"`
	DestinationPort uint16 `col:"destination_port" ecs:"destination.port" doc:"destination port, 0 when absent"`
	InInterface     string `col:"observer_ingress_interface_name" ecs:"observer.ingress.interface.name" lowcard:"true" doc:"interface the packet came in on"`
	OutInterface    string `col:"observer_egress_interface_name" ecs:"observer.egress.interface.name" lowcard:"true" doc:"interface the packet goes out on"`
	Bytes           int64  `col:"network_bytes" ecs:"network.bytes" doc:"bytes (netfilter: IP packet length LEN=), 0 when absent"`
	Packets         int64  `col:"network_packets" ecs:"network.packets" doc:"packets, 0 when absent"`
	Rule            string `col:"rule_name" ecs:"rule.name" doc:"log prefix or rule name, e.g. UFW BLOCK"`
}

// IDS is an intrusion detection alert (Suricata EVE alert).
type IDS struct {
	Base            Common
	SignatureID     int64  `col:"rule_id" ecs:"rule.id" doc:"signature id"`
	Signature       string `col:"rule_name" ecs:"rule.name" doc:"signature text"`
	Category        string `col:"rule_category" ecs:"rule.category" lowcard:"true" doc:"signature category"`
	Severity        int64  `col:"event_severity" ecs:"event.severity" doc:"severity, 1 highest"`
	Transport       string `col:"network_transport" ecs:"network.transport" lowcard:"true" doc:"lower-case IP protocol"`
	AppProtocol     string `col:"network_protocol" ecs:"network.protocol" lowcard:"true" doc:"application protocol, e.g. http, tls"`
	SourceIP        string `col:"source_ip" ecs:"source.ip" doc:"source address"`
	SourcePort      uint16 `col:"source_port" ecs:"source.port" doc:"source port, 0 when absent"`
	DestinationIP   string `col:"destination_ip" ecs:"destination.ip" doc:"destination address"`
	DestinationPort uint16 `col:"destination_port" ecs:"destination.port" doc:"destination port, 0 when absent"`
	Action          string `col:"event_action" ecs:"event.action" lowcard:"true" doc:"allowed or blocked"`
	FlowID          int64  `col:"flow_id" ecs:"suricata.eve.flow_id" doc:"sensor flow id, to correlate with other events of the flow"`
	Interface       string `col:"observer_ingress_interface_name" ecs:"observer.ingress.interface.name" lowcard:"true" doc:"capture interface"`
}

// Web is an HTTP request (access log line or EVE http event).
type Web struct {
	Base          Common
	SourceIP      string `col:"source_ip" ecs:"source.ip" doc:"client address (or host name when the server logged one)"`
	User          string `col:"user_name" ecs:"user.name" doc:"authenticated user, empty for -"`
	Method        string `col:"http_request_method" ecs:"http.request.method" lowcard:"true" doc:"request method"`
	Path          string `col:"url_path" ecs:"url.path" doc:"request path without the query"`
	Query         string `col:"url_query" ecs:"url.query" doc:"query string without the '?'"`
	HTTPVersion   string `col:"http_version" ecs:"http.version" lowcard:"true" doc:"protocol version, e.g. 1.1"`
	Status        uint16 `col:"http_response_status_code" ecs:"http.response.status_code" doc:"response status"`
	Bytes         int64  `col:"http_response_body_bytes" ecs:"http.response.body.bytes" doc:"response size, 0 for -"`
	Referrer      string `col:"http_request_referrer" ecs:"http.request.referrer" doc:"Referer header, empty for -"`
	UserAgent     string `col:"user_agent_original" ecs:"user_agent.original" doc:"User-Agent header, empty for -"`
	Duration      int64  `col:"event_duration" ecs:"event.duration" doc:"request duration in nanoseconds, 0 when not logged"`
	DestinationIP string `col:"destination_ip" ecs:"destination.ip" doc:"server address when known (EVE)"`
}

// Syslog is a valid syslog line that is not security relevant.
type Syslog struct {
	Base    Common
	Program string `col:"process_name" ecs:"process.name" lowcard:"true" doc:"program (syslog tag)"`
	PID     int64  `col:"process_pid" ecs:"process.pid" doc:"process id, 0 when absent"`
	Message string `col:"message" ecs:"message" doc:"the message after the tag"`
}

// Quarantine is a line no parser accepted, kept byte for byte (also when it
// is not valid UTF-8) so it can be replayed once a parser learns it.
type Quarantine struct {
	Base         Common
	Raw          []byte `col:"raw" ecs:"event.original" doc:"the line as received, any bytes"`
	SourceFormat string `col:"source_format" ecs:"-" lowcard:"true" doc:"the parser format that rejected it"`
	Reason       string `col:"error_reason" ecs:"error.type" lowcard:"true" doc:"machine-readable reason, e.g. not_syslog"`
	Message      string `col:"error_message" ecs:"error.message" doc:"human-readable error"`
}

// Dataset names.
const (
	DatasetAuth       = "auth"
	DatasetFirewall   = "firewall"
	DatasetIDS        = "ids"
	DatasetWeb        = "web"
	DatasetSyslog     = "syslog"
	DatasetQuarantine = "quarantine"
)

// Indexes into the registry; the order is the order of Datasets().
const (
	idxAuth = iota
	idxFirewall
	idxIDS
	idxWeb
	idxSyslog
	idxQuarantine
)

// Dataset implements Record.
func (r *Auth) Dataset() string { return DatasetAuth }

// EventTime implements Record.
func (r *Auth) EventTime() time.Time { return r.Base.Timestamp }

// Common implements Record.
func (r *Auth) Common() *Common         { return &r.Base }
func (r *Auth) ptr() unsafe.Pointer     { return unsafe.Pointer(r) }
func (r *Auth) datasetIndex() int       { return idxAuth }
func (r *Firewall) ptr() unsafe.Pointer { return unsafe.Pointer(r) }
func (r *Firewall) datasetIndex() int   { return idxFirewall }

// Dataset implements Record.
func (r *Firewall) Dataset() string { return DatasetFirewall }

// EventTime implements Record.
func (r *Firewall) EventTime() time.Time { return r.Base.Timestamp }

// Common implements Record.
func (r *Firewall) Common() *Common { return &r.Base }

// Dataset implements Record.
func (r *IDS) Dataset() string { return DatasetIDS }

// EventTime implements Record.
func (r *IDS) EventTime() time.Time { return r.Base.Timestamp }

// Common implements Record.
func (r *IDS) Common() *Common     { return &r.Base }
func (r *IDS) ptr() unsafe.Pointer { return unsafe.Pointer(r) }
func (r *IDS) datasetIndex() int   { return idxIDS }

// Dataset implements Record.
func (r *Web) Dataset() string { return DatasetWeb }

// EventTime implements Record.
func (r *Web) EventTime() time.Time { return r.Base.Timestamp }

// Common implements Record.
func (r *Web) Common() *Common     { return &r.Base }
func (r *Web) ptr() unsafe.Pointer { return unsafe.Pointer(r) }
func (r *Web) datasetIndex() int   { return idxWeb }

// Dataset implements Record.
func (r *Syslog) Dataset() string { return DatasetSyslog }

// EventTime implements Record.
func (r *Syslog) EventTime() time.Time { return r.Base.Timestamp }

// Common implements Record.
func (r *Syslog) Common() *Common     { return &r.Base }
func (r *Syslog) ptr() unsafe.Pointer { return unsafe.Pointer(r) }
func (r *Syslog) datasetIndex() int   { return idxSyslog }

// Dataset implements Record.
func (r *Quarantine) Dataset() string { return DatasetQuarantine }

// EventTime implements Record.
func (r *Quarantine) EventTime() time.Time { return r.Base.Timestamp }

// Common implements Record.
func (r *Quarantine) Common() *Common     { return &r.Base }
func (r *Quarantine) ptr() unsafe.Pointer { return unsafe.Pointer(r) }
func (r *Quarantine) datasetIndex() int   { return idxQuarantine }
