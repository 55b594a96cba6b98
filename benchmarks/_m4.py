import sys, time; sys.path.insert(0,'../src')
import numpy as np, w2_mlp, chainrule as cr
from chainrule.graph.trace import record
from chainrule.graph.passes import optimize
from chainrule.graph.executor import generate
dt=np.float32 if sys.argv[1]=='32' else np.float64
params = w2_mlp._cnp_params(dt); x, y = w2_mlp._data(dt, (64,))
vg = cr.value_and_grad(w2_mlp.cnp_loss)
prog, tree, vals = record(vg, (params, x, y), {}, "compile")
exe = generate(optimize(prog)); exe(*params,x,y); exe(*params,x,y)
src = exe.source.splitlines()
ns = dict(exe._fn.__globals__); ns['_pc']=time.perf_counter
body=[src[0]]; ind="    "
n=len(src)-1
body.append(ind+"_T=_TT")
for i,l in enumerate(src[1:]):
    body.append(ind+"_t=_pc()"); body.append(l); body.append(ind+f"_T[{i}]+=_pc()-_t")
ns['_TT']=T=[0.0]*n
exec("\n".join(body), ns)
run=ns['run']; B=exe._local.bufs
for _ in range(300): run(*params,x,y,B)
T[:]=[0.0]*n
for _ in range(1000): run(*params,x,y,B)
tot=sum(T)
for t,l in sorted(zip(T,src[1:]),reverse=True)[:25]: print("%6.1f us  %s"%(t*1e3, l.strip()))
print("total", tot*1e3)
