package auth

// NodeSecretHeader is the HTTP header another node sends the cluster
// secret in (Config.ClusterSecret): node-to-node calls (internal/peer) set
// it, the gateway checks it (Service.NodeSecretOK).
const NodeSecretHeader = "Weir-Node-Secret"
