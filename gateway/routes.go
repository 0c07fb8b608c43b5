package gateway

import (
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
)

const (
	topicRT   = auth.Topic
	groupRT   = auth.Group
	subRT     = auth.Subscription
	moduleRT  = auth.Module
	pipeRT    = auth.Pipeline
	clusterRT = auth.Cluster
)

// routes is the gateway's route table (route.go says how a row is served).
// Request types name their needs with `need` tags next to their fields;
// a route no row matches is 404, another method of a matched path 405.
var routes = &table{routes: []*route{
	raw("GET", "/healthz", (*Server).healthz, public(), doc("liveness: 200 while the process serves")),
	raw("GET", "/readyz", (*Server).readyz, public(), doc("readiness: 200 once the node's store is ready, else 503")),
	raw("GET", "/", (*Server).dashboard, public(), doc("the dashboard page")),
	raw("GET", "/ui/*", (*Server).dashboard, public(), doc("the dashboard's files")),
	raw("GET", "/sdk/*", (*Server).mounted, public(), doc("the browser client (weir.js)")),
	raw("GET", "/demo", (*Server).mounted, public(), doc("the live demo page")),
	raw("GET", "/metrics", (*Server).mounted, every(clusterRT, auth.Describe), doc("Prometheus metrics")),

	op("GET", "/v1/whoami", (*Server).whoami, doc("the caller's principal")),
	raw("GET", "/v1/ws", (*Server).serveWSRoute, doc("the WebSocket protocol (docs/websocket.md); each frame is authorized")),

	op("GET", "/v1/topics", (*Server).listTopics, every(topicRT, auth.Describe), doc("list topics")),
	op("POST", "/v1/topics", (*Server).createTopic, audited(), doc("create a topic"),
		example(`{"name":"orders","partitions":3,"replication_factor":1,"retention_ms":0,"retention_bytes":0}`)),
	op("GET", "/v1/topics/{t}", (*Server).describeTopic, doc("a topic with its partitions")),
	op("DELETE", "/v1/topics/{t}", (*Server).deleteTopic, audited(), doc("delete a topic")),
	op("POST", "/v1/topics/{t}/partitions", (*Server).addPartitions, audited(), doc("add partitions to a topic (the new partition count in all)"),
		example(`{"partitions":6}`)),
	op("POST", "/v1/topics/{t}/records", (*Server).produce, meter(quota.Produce), doc("produce records (JSON batch, or a raw body as one record)"),
		example(`{"records":[{"key":"k","value":"v"}]}`)),
	op("GET", "/v1/topics/{t}/partitions/{p}/records", (*Server).fetch, meter(quota.Fetch), doc("fetch records by offset or timestamp, with long-poll")),
	op("GET", "/v1/topics/{t}/ws", (*Server).serveTopicWS, doc("a WebSocket with one subscription made from the query")),

	op("POST", "/v1/topics/{t}/subscriptions", (*Server).createSubscription, audited(), doc("create a queue subscription"),
		example(`{"name":"workers","dead_letter_topic":"orders.dlq","max_attempts":3}`)),
	op("GET", "/v1/topics/{t}/subscriptions", (*Server).listSubscriptions, doc("list a topic's subscriptions")),
	op("GET", "/v1/topics/{t}/subscriptions/{s}", (*Server).describeSubscription, doc("a subscription with its statistics")),
	op("DELETE", "/v1/topics/{t}/subscriptions/{s}", (*Server).deleteSubscription, audited(), doc("delete a subscription")),
	op("POST", "/v1/topics/{t}/subscriptions/{s}/receive", (*Server).receive, meter(quota.Fetch), doc("lease messages"),
		example(`{"max_records":10,"wait_ms":0}`)),
	op("POST", "/v1/topics/{t}/subscriptions/{s}/ack", (*Server).ack, doc("acknowledge leased messages"),
		example(`{"receipts":["r"]}`)),
	op("POST", "/v1/topics/{t}/subscriptions/{s}/nack", (*Server).nack, doc("return leased messages for redelivery"),
		example(`{"receipts":["r"]}`)),
	op("POST", "/v1/topics/{t}/subscriptions/{s}/extend", (*Server).extend, doc("extend leases"),
		example(`{"receipts":["r"],"visibility_timeout_ms":1000}`)),
	op("POST", "/v1/topics/{t}/redrive", (*Server).redrive, audited(), doc("move a dead-letter topic's records to another topic"),
		example(`{"to":"orders","max_records":0}`)),

	op("GET", "/v1/groups", (*Server).listGroups, every(groupRT, auth.Describe), doc("list consumer groups")),
	op("GET", "/v1/groups/{g}", (*Server).describeGroup, doc("a group's members, assignment and lag")),
	op("GET", "/v1/groups/{g}/offsets", (*Server).getOffsets, doc("a group's committed offsets")),
	op("POST", "/v1/groups/{g}/offsets", (*Server).commitOffsets, doc("commit offsets (no membership)"),
		example(`{"offsets":[{"topic":"orders","partition":0,"offset":1}]}`)),
	op("POST", "/v1/groups/{g}/members", (*Server).joinGroup, doc("join a group"),
		example(`{"topics":["orders"],"session_timeout_ms":10000}`)),
	op("DELETE", "/v1/groups/{g}/members/{m}", (*Server).leaveGroup, doc("leave a group")),
	op("POST", "/v1/groups/{g}/members/{m}/heartbeat", (*Server).heartbeatMember, doc("renew a member's session")),
	op("POST", "/v1/groups/{g}/members/{m}/poll", (*Server).pollMember, meter(quota.Fetch), doc("records of the member's partitions"),
		example(`{"generation":1,"wait_ms":0}`)),
	op("POST", "/v1/groups/{g}/members/{m}/commit", (*Server).commitMember, doc("commit offsets, fenced by generation"),
		example(`{"generation":1,"offsets":[{"topic":"orders","partition":0,"offset":1}]}`)),

	op("GET", "/v1/cluster", (*Server).clusterStatus, doc("nodes, health, shards, leaders")),
	op("POST", "/v1/cluster/join", (*Server).clusterJoin, audited(), doc("add a node (weir serve --join)"),
		example(`{"node_id":9,"raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`)),
	op("POST", "/v1/cluster/rebalance", (*Server).clusterRebalance, audited(), doc("spread replicas and leaders evenly")),
	op("DELETE", "/v1/cluster/nodes/{id}", (*Server).clusterRemove, audited(), doc("move replicas off a node, then remove it")),
	op("POST", "/v1/cluster/nodes/{id}/remove", (*Server).clusterRemove, audited(), doc("the same")),
	op("GET", "/v1/stats", (*Server).getStats, doc("throughput, lag and pipeline progress (the dashboard's source)")),

	op("GET", "/v1/modules", (*Server).listModules, every(moduleRT, auth.Describe), doc("list modules")),
	op("PUT", "/v1/modules/{m}", (*Server).uploadModule, audited(), doc("upload a module version (the body is the .wasm)")),
	op("GET", "/v1/modules/{m}", (*Server).describeModule, doc("a module's versions")),
	op("DELETE", "/v1/modules/{m}", (*Server).deleteModule, audited(), doc("delete a module")),
	op("GET", "/v1/pipelines", (*Server).listPipelines, every(pipeRT, auth.Describe), doc("list pipelines")),
	op("POST", "/v1/pipelines", (*Server).createPipeline, audited(), doc("create a pipeline"),
		example(`{"name":"clean","module":"redact","inputs":["orders"],"outputs":["orders-clean"],"on_error":{"dead_letter_topic":"orders-dlq"}}`)),
	op("GET", "/v1/pipelines/{p}", (*Server).describePipeline, doc("a pipeline's status and progress")),
	op("PATCH", "/v1/pipelines/{p}", (*Server).upgradePipeline, audited(), doc("upgrade a pipeline's module at a batch boundary, keeping its position and state; also needs the create's topic rights on the stored inputs, outputs and dead-letter topic"),
		example(`{"module":"redact","version":2}`)),
	op("DELETE", "/v1/pipelines/{p}", (*Server).deletePipeline, audited(), doc("delete a pipeline (?purge=true: its position and state too)")),
	op("GET", "/v1/pipelines/{p}/logs", (*Server).pipelineLogs, doc("guest log lines this node keeps for a pipeline (?after=SEQ&wait_ms=MS to follow)")),
	op("POST", "/v1/pipelines/{p}/pause", (*Server).pausePipeline, audited(), doc("pause a pipeline")),
	op("POST", "/v1/pipelines/{p}/resume", (*Server).resumePipeline, audited(), doc("resume a pipeline")),

	op("GET", "/v1/principals", (*Server).listPrincipals, adminOnly(), doc("principals with their token ids")),
	op("POST", "/v1/principals", (*Server).createPrincipal, adminOnly(), audited(), doc("a new token (the principal is created if missing)"),
		example(`{"name":"alice","admin":false}`)),
	op("DELETE", "/v1/principals/{name}", (*Server).deletePrincipal, adminOnly(), audited(), doc("delete a principal with its tokens and ACLs")),
	op("POST", "/v1/principals/{name}/tokens", (*Server).addToken, adminOnly(), audited(), doc("another token")),
	op("DELETE", "/v1/principals/{name}/tokens/{id}", (*Server).revokeToken, adminOnly(), audited(), doc("revoke a token")),
	op("GET", "/v1/acls", (*Server).listACLs, adminOnly(), doc("ACLs, optionally of one principal")),
	op("POST", "/v1/acls", (*Server).addACL, adminOnly(), audited(), doc("add an ACL"),
		example(`{"principal":"alice","resource_type":"topic","pattern":"orders.","pattern_type":"prefix","operations":["read"]}`)),
	op("DELETE", "/v1/acls/{id}", (*Server).removeACL, adminOnly(), audited(), doc("remove an ACL")),
	op("GET", "/v1/quotas", (*Server).listQuotas, adminOnly(), doc("quotas per principal (docs/quotas.md)")),
	op("GET", "/v1/quotas/{principal}", (*Server).getQuota, adminOnly(), doc("a principal's own quota (404 `not_found` when it has none)")),
	op("PUT", "/v1/quotas/{principal}", (*Server).setQuota, adminOnly(), audited(), doc("set a principal's quota (`default`: everyone without one)"),
		example(`{"produce_bytes_per_sec":1048576,"fetch_bytes_per_sec":0,"requests_per_sec":100}`)),
	op("DELETE", "/v1/quotas/{principal}", (*Server).removeQuota, adminOnly(), audited(), doc("remove a principal's quota")),

	op("GET", "/v1/links", (*Server).listLinks, adminOnly(), doc("cluster links with their mirror topics (docs/geo-replication.md)")),
	op("POST", "/v1/links", (*Server).createLink, adminOnly(), audited(), doc("create a link that mirrors a source cluster's topics and group offsets into this cluster"),
		example(`{"name":"from-a","source_url":"https://a.example:8080","source_token":"t","topics":["orders","events.*"],"groups":["billing*"]}`)),
	op("GET", "/v1/links/{name}", (*Server).describeLink, adminOnly(), doc("a link with each mirror topic's lag per partition, in records and seconds")),
	op("DELETE", "/v1/links/{name}", (*Server).deleteLink, adminOnly(), audited(), doc("delete a link: mirroring stops, its mirror topics become writable")),
	op("POST", "/v1/links/{name}/promote", (*Server).promoteLink, adminOnly(), audited(), doc("make mirror topics writable (failover); the link stops pulling them"),
		example(`{"topics":["orders"]}`)),

	// A mount point (Handle): internal/peer serves node-to-node calls.
	raw("POST", "/v1/internal/*", (*Server).mounted, nodeOnly(), doc("node-to-node calls (not for clients)")),
	raw("GET", "/v1/internal/*", (*Server).mounted, nodeOnly(), doc("node-to-node calls (not for clients)")),
}}
