/**
 * Real-server health-check configuration, as keepalived's virtual_server / real_server blocks describe it (TCP_CHECK,
 * HTTP_GET, SSL_GET, MISC_CHECK). Types only: the keepalived.conf parser produces them, the checkers consume them.
 * Times are in seconds, as in keepalived.conf.
 */

export interface CheckCommon {
  /** connect_ip (default: the real server's address) */
  connectIp?: string;
  /** connect_port (default: the real server's port) */
  connectPort?: number;
  bindTo?: string;
  bindPort?: number;
  /** connect_timeout (keepalived default 5 s) */
  connectTimeout: number;
  /** retry: attempts after a failure before the server is marked down (keepalived default 1) */
  retry: number;
  /** delay_before_retry (keepalived default 1 s) */
  delayBeforeRetry: number;
  /** the checker's own delay_loop, when it overrides the virtual server's */
  delayLoop?: number;
  /** warmup: random delay before the first check */
  warmup?: number;
}

export interface TcpCheck extends CheckCommon {
  type: 'tcp';
}

export interface HttpUrlCheck {
  path: string;
  /** accepted status codes (keepalived default: 200-299) */
  statusCodes: number[];
  /** MD5 of the body as genhash prints it, lower-case hex */
  digest?: string;
}

export interface HttpGetCheck extends CheckCommon {
  type: 'http';
  /** SSL_GET */
  tls: boolean;
  urls: HttpUrlCheck[];
  /** Host header (virtualhost in the checker or the virtual server) */
  virtualhost?: string;
}

export interface MiscCheck {
  type: 'misc';
  /** misc_path: the command line, run without a shell */
  path: string;
  /** misc_timeout (default: the delay loop) */
  timeout?: number;
  /**
   * misc_dynamic: the exit code sets the weight: 0 = up, 1 = down, 2..255 = up with weight code − 2
   */
  dynamic: boolean;
  user?: string;
  delayLoop?: number;
  warmup?: number;
}

export type RealServerCheck = TcpCheck | HttpGetCheck | MiscCheck;

export interface RealServerHealth {
  addr: string;
  port: number;
  /** inhibit_on_failure: on failure set the weight to 0 instead of removing the server */
  inhibitOnFailure: boolean;
  checks: RealServerCheck[];
  notifyUp?: string;
  notifyDown?: string;
}

export interface SorryServer {
  addr: string;
  port: number;
  /** sorry_server_inhibit */
  inhibit: boolean;
}

export interface VirtualServerHealth {
  /** delay_loop: seconds between checks (keepalived default 60) */
  delayLoop: number;
  sorryServer?: SorryServer;
  /** quorum: minimum sum of live weights (default 1) */
  quorum: number;
  hysteresis: number;
  quorumUp?: string;
  quorumDown?: string;
  /** alpha: servers start as down until a check succeeds */
  alpha: boolean;
  /** omega: run notify_down / quorum_down when the virtual server is removed */
  omega: boolean;
  /** ha_suspend: checks run only while a VRRP instance holds the VIP */
  haSuspend: boolean;
  virtualhost?: string;
  realServers: RealServerHealth[];
}
