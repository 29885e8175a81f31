package gen

// Read-only lookup tables. Nothing writes to them after initialization.

// Background users are an initial + surname (+ number): "jsmith",
// "mgarcia12". Attack user lists below never have that shape, so names
// cannot collide.
var lastNames = [...]string{
	"smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis",
	"rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas",
	"taylor", "moore", "jackson", "martin", "lee", "perez", "thompson", "white",
	"harris", "sanchez", "clark", "ramirez", "lewis", "robinson", "walker", "young",
	"allen", "king", "wright", "scott", "torres", "nguyen", "hill", "flores",
	"green", "adams", "nelson", "baker", "hall", "rivera", "campbell", "mitchell",
	"carter", "roberts", "gomez", "phillips", "evans", "turner", "diaz", "parker",
	"cruz", "edwards", "collins", "reyes", "stewart", "morris", "morales", "murphy",
	"cook", "rogers", "gutierrez", "ortiz", "morgan", "cooper", "peterson", "bailey",
	"reed", "kelly", "howard", "ramos", "kim", "cox", "ward", "richardson",
	"watson", "brooks", "chavez", "wood", "james", "bennett", "gray", "mendoza",
	"ruiz", "hughes", "price", "alvarez", "castillo", "sanders", "patel", "myers",
	"long", "ross", "foster", "jimenez", "powell", "jenkins", "perry", "russell",
	"sullivan", "bell", "coleman", "butler", "henderson", "barnes", "gonzales", "fisher",
	"vasquez", "simmons", "romero", "jordan", "patterson", "alexander", "hamilton", "graham",
	"reynolds", "griffin", "wallace", "moreno", "west", "cole", "hayes", "bryant",
}

var sshHosts = [...]string{"bastion-01", "bastion-02", "bastion-03", "bastion-04"}

var fwHosts = [4]string{"fw-edge-01", "fw-edge-02", "fw-edge-03", "fw-edge-04"}

// blockedPorts are the only ports background traffic is denied on: no
// background source can reach port_scan's 20 distinct denied ports.
var blockedPorts = [8]uint16{23, 445, 3389, 1433, 5900, 139, 3306, 6379}

type service struct {
	port uint16
	udp  bool
}

var services = [...]service{
	{443, false}, {443, false}, {443, false}, {80, false}, {80, false}, {22, false},
	{25, false}, {993, false}, {53, true}, {123, true}, {8443, false}, {587, false},
}

type webPath struct {
	method, path, query string
	status, bytes       int
	asset               bool
}

var sitePaths = [...]webPath{
	{"GET", "/", "", 200, 5320, false},
	{"GET", "/index.html", "", 200, 5320, false},
	{"GET", "/css/site.css", "", 200, 18211, true},
	{"GET", "/js/app.js", "", 200, 90412, true},
	{"GET", "/js/app.js", "", 304, 0, true},
	{"GET", "/images/logo.png", "", 200, 7710, true},
	{"GET", "/images/logo.png", "", 304, 0, true},
	{"GET", "/favicon.ico", "", 200, 1150, true},
	{"GET", "/api/v1/items", "page=", 200, 2210, true},
	{"GET", "/api/v1/items/42", "", 200, 640, true},
	{"POST", "/api/v1/cart", "", 201, 312, true},
	{"GET", "/search", "q=shoes&page=", 200, 14003, false},
	{"GET", "/products/blue-widget", "", 200, 11045, false},
	{"GET", "/about", "", 200, 4410, false},
	{"GET", "/login", "", 200, 3900, false},
	{"POST", "/login", "", 302, 0, false},
	{"GET", "/account", "", 200, 6120, false},
	{"GET", "/old-catalog", "", 301, 178, false},
	{"GET", "/api/v1/health", "", 200, 17, false},
	{"GET", "/static/fonts/inter.woff2", "", 200, 48130, true},
}

var missingPaths = [...]webPath{
	{"GET", "/apple-touch-icon.png", "", 404, 0, false},
	{"GET", "/products/red-widget", "", 404, 0, false},
	{"GET", "/account", "", 401, 0, false},
	{"GET", "/admin", "", 403, 0, false},
	{"GET", "/images/banner-2019.jpg", "", 404, 0, false},
	{"GET", "/api/v1/items/99999", "", 404, 0, false},
}

var userAgents = [...]string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"curl/8.5.0",
}

// signature is a Suricata rule as it appears in an alert.
type signature struct {
	id, rev        int
	name, category string
	severity       int
	port           uint16 // usual destination port, 0 for any
}

var bgSignatures = [...]signature{
	{2402000, 7001, "ET DROP Dshield Block Listed Source", "Misc Attack", 2, 0},
	{2010937, 3, "ET SCAN Suspicious inbound to mySQL port 3306", "Potentially Bad Traffic", 2, 3306},
	{2010935, 3, "ET SCAN Suspicious inbound to MSSQL port 1433", "Potentially Bad Traffic", 2, 1433},
	{2002911, 6, "ET SCAN Potential VNC Scan 5900-5920", "Attempted Information Leak", 2, 5900},
	{2001569, 15, "ET SCAN Behavioral Unusual Port 445 traffic Potential Scan or Infection", "Misc activity", 3, 445},
	{2023753, 2, "ET SCAN MS Terminal Server Traffic on Non-standard Port", "Attempted Information Leak", 2, 3389},
	{2100366, 8, "GPL ICMP_INFO PING *NIX", "Misc activity", 3, 0},
}

var (
	sigSSHScan   = signature{2001219, 20, "ET SCAN Potential SSH Scan", "Attempted Information Leak", 2, 22}
	sigNmapSYN   = signature{2009582, 3, "ET SCAN NMAP -sS window 1024", "Attempted Information Leak", 2, 0}
	sigNikto     = signature{2002677, 14, "ET SCAN Nikto Web App Scan in Progress", "Web Application Attack", 1, 80}
	sigSSHLibssh = signature{2006435, 9, "ET SCAN LibSSH Based Frequent SSH Connections Likely BruteForce Attack", "Attempted Administrator Privilege Gain", 1, 22}
)

// Attack user lists. Each list is walked with a rotation (see attacks.go)
// so no user meets 10 attacking IPs within 5 minutes unless it is the
// target of a distributed brute force.
var bruteUsers = [12]string{"root", "admin", "test", "ubuntu", "oracle", "postgres", "user", "pi", "git", "ftpuser", "guest", "support"}

var sprayUsers = [60]string{
	"alice.walker", "bob.stone", "carol.reed", "dave.hunt", "erin.cole", "frank.nash", "grace.lin", "henry.ford",
	"irene.adler", "jack.ryan", "kate.bell", "liam.ross", "mia.wong", "noah.price", "olga.kurz", "pete.lamb",
	"quinn.hale", "rosa.diaz", "sam.porter", "tina.fey", "umar.khan", "vera.holt", "walt.white", "xena.ward",
	"yuri.gold", "zoe.marsh", "adam.west", "beth.ortiz", "carl.sagan", "dina.shore", "eli.stone", "fay.wray",
	"gus.fring", "hank.hill", "ivy.chen", "joel.miller", "kim.wexler", "leo.frank", "max.payne", "nina.sharp",
	"otto.mann", "pam.beesly", "ray.donovan", "sara.lance", "ted.mosby", "uma.rao", "vic.mackey", "wanda.max",
	"xavier.cruz", "yara.greyjoy", "zack.morris", "amy.pond", "ben.wyatt", "cody.banks", "dora.milaje", "evan.hansen",
	"finn.hudson", "gina.linetti", "hugo.strange", "iris.west",
}

var distTargets = [16]string{
	"svc_backup", "svc_jenkins", "svc_deploy", "svc_ansible", "svc_nagios", "svc_hadoop", "svc_kafka", "svc_elastic",
	"svc_gitlab", "svc_zabbix", "svc_vault", "svc_grafana", "svc_airflow", "svc_spark", "svc_redis", "svc_ldap",
}

var loginUsers = [...]string{"ec2-user", "centos", "deploy", "ansible", "ops", "admin"}

var scanPaths = [...]string{
	"/wp-login.php", "/wp-admin/", "/xmlrpc.php", "/.env", "/.git/config", "/phpmyadmin/",
	"/pma/", "/admin/config.php", "/config.php.bak", "/backup.zip", "/db.sql", "/.htaccess",
	"/server-status", "/cgi-bin/test.cgi", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
	"/actuator/env", "/solr/admin/info/system", "/console/", "/manager/html", "/owa/auth/logon.aspx",
	"/remote/login", "/boaform/admin/formLogin", "/HNAP1/", "/.aws/credentials", "/.DS_Store",
	"/wp-content/plugins/revslider/", "/jenkins/login", "/api/jsonws/invoke", "/hudson", "/login.action",
	"/struts2-showcase/", "/index.php?s=/Index/think/app/invokefunction", "/shell.php", "/test.php",
	"/info.php", "/phpinfo.php", "/old/", "/new/", "/site/", "/wordpress/",
}

var scanUAs = [...]string{
	"Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000001)",
	"Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
	"sqlmap/1.8.2#stable (https://sqlmap.org)",
	"gobuster/3.6",
	"Mozilla/5.0 zgrab/0.x",
}

// scanPorts are tried first by a port scan, in this order, then random ones.
var scanPorts = [...]uint16{
	21, 23, 25, 53, 110, 111, 135, 139, 143, 161, 389, 445, 465, 512, 513, 514,
	587, 631, 873, 993, 995, 1080, 1433, 1521, 2049, 2375, 3306, 3389, 5432, 5900,
	5984, 6379, 7001, 8000, 8080, 8081, 8443, 8888, 9000, 9200, 11211, 27017,
}
