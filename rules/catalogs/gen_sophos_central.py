# Generates rules/catalogs/sophos-central.yaml from a structured transcription.
import re, collections
LIC = [("intercept-x-advanced","Intercept X Advanced"),("intercept-x-advanced-server","Intercept X Advanced for Server"),
("intercept-x-advanced-xdr","Intercept X Advanced with XDR"),("intercept-x-advanced-server-xdr","Intercept X Advanced for Server with XDR"),
("mdr-essentials","Managed Detection and Response Essentials"),("mdr-complete","Managed Detection and Response Complete"),
("mdr-essentials-server","Managed Detection and Response Essentials Server"),("mdr-complete-server","Managed Detection and Response Complete Server")]
XDR = [l for l,_ in LIC if 'xdr' in l or 'mdr' in l]
W,M,L = 'windows','macos','linux'
os_common = """t1.sophosupd.com sus.sophosupd.com sdds3.sophosupd.com sdds3.sophosupd.net sdu-feedback.sophos.com sophosxl.net 4.sophosxl.net samples.sophosxl.net cloud.sophos.com id.sophos.com central.sophos.com downloads.sophos.com amazonaws.com""".split()
os_winmac = """ssp.sophos.com sdu-auto-upload.sophosupd.com rca-upload-cloudstation-us-west-2.prod.hydra.sophos.com rca-upload-cloudstation-us-east-2.prod.hydra.sophos.com rca-upload-cloudstation-eu-west-1.prod.hydra.sophos.com rca-upload-cloudstation-eu-central-1.prod.hydra.sophos.com rca-upload.stn100bom.ctr.sophos.com rca-upload.stn100yul.ctr.sophos.com rca-upload.stn100hnd.ctr.sophos.com rca-upload.stn100gru.ctr.sophos.com rca-upload.stn100syd.ctr.sophos.com""".split()
mcs = """dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com dzr-mcs-amzn-us-west-2-fa88.upe.p.hmr.sophos.com mcs-cloudstation-eu-central-1.prod.hydra.sophos.com mcs-cloudstation-eu-west-1.prod.hydra.sophos.com mcs-cloudstation-us-east-2.prod.hydra.sophos.com mcs-cloudstation-us-west-2.prod.hydra.sophos.com mcs2-cloudstation-eu-west-1.prod.hydra.sophos.com mcs2-cloudstation-eu-central-1.prod.hydra.sophos.com mcs2-cloudstation-us-east-2.prod.hydra.sophos.com mcs2-cloudstation-us-west-2.prod.hydra.sophos.com mcs.stn100syd.ctr.sophos.com mcs.stn100yul.ctr.sophos.com mcs.stn100hnd.ctr.sophos.com mcs2.stn100syd.ctr.sophos.com mcs2.stn100yul.ctr.sophos.com mcs2.stn100hnd.ctr.sophos.com mcs.stn100gru.ctr.sophos.com mcs2.stn100gru.ctr.sophos.com mcs.stn100bom.ctr.sophos.com mcs2.stn100bom.ctr.sophos.com""".split()
intelix = "us.analysis.sophos.com apac.analysis.sophos.com au.analysis.sophos.com eu.analysis.sophos.com".split()
ca = "ocsp.globalsign.com ocsp2.globalsign.com crl.globalsign.com crl.globalsign.net ocsp.digicert.com crl3.digicert.com crl4.digicert.com".split()
examples1 = "dzr-mcs-amzn-eu-west-1-9af7.upe.p.hmr.sophos.com mcs2-cloudstation-us-east-2.prod.hydra.sophos.com mcs.stn100yul.ctr.sophos.com mcs2.stn100yul.ctr.sophos.com".split()
examples2 = "dzr-api-amzn-eu-west-1-9af7.api-upe.p.hmr.sophos.com api-cloudstation-us-east-2.prod.hydra.sophos.com api.stn100yul.ctr.sophos.com".split()
central = "central.sophos.com cloud-assets.sophos.com sophos.com downloads.sophos.com".split()
nonsophos = "az416426.vo.msecnd.net dc.services.visualstudio.com".split()
wild = "*.sophos.com *.sophosupd.com *.sophosupd.net *.sophosxl.net *.analysis.sophos.com *.ctr.sophos.com *.hydra.sophos.com".split()
xdr = """live-terminal-eu-west-1.prod.hydra.sophos.com live-terminal-eu-central-1.prod.hydra.sophos.com live-terminal-us-west-2.prod.hydra.sophos.com live-terminal-us-east-2.prod.hydra.sophos.com live-terminal.stn100yul.ctr.sophos.com live-terminal.stn100syd.ctr.sophos.com live-terminal.stn100hnd.ctr.sophos.com live-terminal.stn100gru.ctr.sophos.com live-terminal.stn100bom.ctr.sophos.com mcs-push-server-eu-west-1.prod.hydra.sophos.com mcs-push-server-eu-central-1.prod.hydra.sophos.com mcs-push-server-us-west-2.prod.hydra.sophos.com mcs-push-server-us-east-2.prod.hydra.sophos.com mcs-push-server.stn100yul.ctr.sophos.com mcs-push-server.stn100syd.ctr.sophos.com mcs-push-server.stn100hnd.ctr.sophos.com mcs-push-server.stn100gru.ctr.sophos.com mcs-push-server.stn100bom.ctr.sophos.com""".split()
tls = "prod.endpointintel.darkbytes.io kinesis.us-west-2.amazonaws.com".split()
regions = "eu-west-1 eu-central-1 us-east-2 us-west-2 ca-central-1 ap-southeast-2 ap-northeast-1 ap-south-1 sa-east-1".split()
presigned = [f"tf-presigned-url-{r}-prod-*-bucket.s3.{r}.amazonaws.com" for r in regions]
s3wild = [f"*.s3.{r}.amazonaws.com" for r in regions]
apu = ["*.apu.sophos.com"]

entries = collections.OrderedDict()
def add(p, group, oses=None, ports=None, example=None):
    e = entries.setdefault(p, {"groups":[], "os":set(), "ports":ports, "example":None, "notes":[]})
    if group not in e["groups"]: e["groups"].append(group)
    if oses: e["os"] |= set(oses)
    else: e["os"] = None if e["os"] == set() or e["os"] is None else e["os"]
    if example is not None: e["example"] = example if e["example"] is None else (e["example"] and example)
    return e
# per-entry OS: an entry limited to OSes only if every group it is in is per-OS
osgroups = {"os-addresses","mcs","intelix","certificate-authorities","installer-hosts"}
for p in central: add(p,"central-admin")
for p in nonsophos: add(p,"non-sophos")
for p in wild: add(p,"sophos-wildcards")
for p in central: add(p,"sophos-exact")
for p in examples1+examples2: add(p,"installer-hosts", example=(p in examples2))
for p in os_common: add(p,"os-addresses")
for p in os_winmac: add(p,"os-addresses")
for p in mcs: add(p,"mcs")
for p in intelix: add(p,"intelix")
for p in ca: add(p,"certificate-authorities")
for p in xdr: add(p,"xdr-mdr")
for p in tls: add(p,"tls-inspection")
for p in presigned: add(p,"adsync-presigned")
for p in s3wild: add(p,"adsync-s3")
for p in apu: add(p,"remote-assistance-ssh")
oslist = {}
for p in os_common+mcs+intelix+ca+examples1: oslist[p] = [W,M,L]
for p in os_winmac: oslist[p] = [W,M]
for p in examples2: oslist[p] = [W]  # given in the Windows tab only
def region(p):
    for r in regions:
        if r in p: return r
    m = re.search(r'stn100(yul|syd|hnd|gru|bom)', p)
    return m.group(0) if m else None
notes = {
 "amazonaws.com": ["Some firewalls or proxies show reverse lookups with *.amazonaws.com addresses; this is expected, as several servers are hosted on AWS."],
}
for p in examples2:
    notes[p] = ["Example only: each account's real host comes from its installer log (Windows SophosCloudInstaller.log, macOS SophosCloudConfig.plist, Linux SophosSetup.sh output)."]
for p in examples1:
    notes.setdefault(p, []).append("Also given as an example of the hosts an installer log names.")

def q(s): return '"' + s.replace('\\','\\\\').replace('"','\\"') + '"'
out = []
w = out.append
w("# Sophos Central: domains and ports to allow, transcribed entry for entry.")
w("# Generated from the source document; see README, \"Catalog format\".")
w("catalog: sophos-central")
w("title: Sophos Central - domains and ports to allow")
w("source: Sophos Central Admin help, \"Domains and ports to allow\"")
w("licenses:")
for i,n in LIC: w(f"  - {{id: {i}, name: {q(n)}}}")
w("sections:")
w("  - id: intercept-x\n    title: Intercept X, XDR, or MDR\n    licenses: [" + ", ".join(l for l,_ in LIC) + "]")
w("    notes:\n      - " + q("Don't use firewall regional rules: the services run on AWS, whose addresses are not static."))
w("  - id: ad-sync\n    title: Sophos AD Sync\n    optional: true")
w("    needs_wildcards: " + q("the source says: if your firewall doesn't allow wildcards you can't use Sophos AD Sync utility"))
w("    notes:\n      - " + q("Opens whole S3 regions. When using wildcard FQDNs, make sure DNS requests go through your firewall."))
w("  - id: remote-assistance\n    title: Remote assistance\n    optional: true")
w("    notes:\n      - " + q("Lets Sophos Support staff reach devices remotely over port 22 TCP."))
G = [
 ("central-admin","intercept-x","Sophos Central Admin domains",None,None,[]),
 ("non-sophos","intercept-x","Non-Sophos addresses needed for essential operations",None,None,[]),
 ("sophos-wildcards","intercept-x","Sophos domains, wildcard set (firewalls that support wildcards)",None,None,["Wildcard mode only: exact mode drops these patterns."]),
 ("sophos-exact","intercept-x","Sophos domains, exact set (firewalls without wildcards)",None,None,[]),
 ("installer-hosts","intercept-x","Hosts the installer log names (examples)",None,None,["Each account's management and API hosts must be read from its installer log: Windows SophosCloudInstaller.log lines starting 'Opening connection to'; macOS SophosCloudConfig.plist key RegistrationServerURL; Linux 'sudo bash -x ./SophosSetup.sh' lines '+ CLOUD_URL=' and '+ MCS_URL='. The entries here are the source's examples."]),
 ("os-addresses","intercept-x","Per-OS addresses",None,None,["Linux lists no ssp.sophos.com, no sdu-auto-upload.sophosupd.com and no rca-upload hosts."]),
 ("mcs","intercept-x","Sophos Management Communication System",None,None,[]),
 ("intelix","intercept-x","SophosLabs Intelix",None,None,[]),
 ("certificate-authorities","intercept-x","Certificate authorities (OCSP and CRL over plain HTTP)",[80,443],None,["Needed if the firewall does not already allow them."]),
 ("xdr-mdr","intercept-x","XDR and MDR: Live Response and Live Discover",None,XDR,["The domains required for Live Response and Live Discover can change; contact Sophos Support if these features don't work with all domains allowed."]),
 ("tls-inspection","intercept-x","Exempt from TLS inspection or application filtering",None,None,["egressgate never terminates TLS; these are admitted like the others."]),
 ("adsync-presigned","ad-sync","AD Sync: pre-signed S3 domains (Active Directory service)",None,None,[]),
 ("adsync-s3","ad-sync","AD Sync: S3 wildcards",None,None,[]),
 ("remote-assistance-ssh","remote-assistance","Remote assistance over SSH",[22],None,[]),
]
w("groups:")
for gid,sec,title,ports,lic,gn in G:
    w(f"  - id: {gid}\n    section: {sec}\n    title: {q(title)}")
    if ports: w(f"    ports: [{', '.join(map(str,ports))}]")
    if lic: w(f"    licenses: [{', '.join(lic)}]")
    if gn:
        w("    notes:")
        for n in gn: w("      - " + q(n))
w("entries:")
for p,e in entries.items():
    w(f"  - pattern: {q(p)}")
    w(f"    groups: [{', '.join(e['groups'])}]")
    if p in oslist and oslist[p]:
        w(f"    os: [{', '.join(oslist[p])}]")
    r = region(p)
    if r: w(f"    region: {r}")
    if e["example"]: w("    example: true")
    if p in notes:
        w("    notes:")
        for n in notes[p]: w("      - " + q(n))
open("rules/catalogs/sophos-central.yaml","w").write("\n".join(out)+"\n")
print(len(entries), "entries")
