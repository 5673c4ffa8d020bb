/*
 * QKDChannel: handshake and pad synchronisation, an abstract model for spin.
 * Normative text: Spec/handshake.md ("Model"). Checked by .ci/run:
 *   spin -a handshake.pml && cc -O2 -DSAFETY -o pan pan.c && ./pan -m100000
 * (every assertion must hold in every interleaving; "errors: 0").
 *
 * Actors: initiator I, responder R, and an active attacker on both directions who can drop,
 * duplicate, replay an earlier frame, reorder (by replaying later), tamper with the
 * unauthenticated suite offer, and inject frames with guessed tags.
 * Crypto is abstract: a frame's tag verifies iff it was made by the honest sender over exactly
 * the bytes received with the pad of the stated slot (Wegman-Carter; forgery probability is
 * treated as 0 here and bounded in Spec/crypto.md).
 *
 * Modes: pool (the Finished tags alone authenticate) or pki, chosen by the initiator. In pki
 * mode each side pauses for the external, asynchronous validation of the peer's certificate
 * (Spec/handshake.md section 6: the session emits validatePeer and waits for peerValidated;
 * frames that arrive meanwhile stay in the channel). The attacker may substitute its own
 * certificate (cert = 0) in the ServerHello or in the initiator's Finished, and then, being the
 * peer of that key agreement, can also make tags that verify for that side (a man in the middle).
 *
 * Pool mode resume (Spec/session.md 4.1): each hello carries its sender's watermarks (outbound
 * cursor, inbound next) packed in `w` = out * 8 + in, and the transcript binds both. The
 * responder may start with its inbound watermark one slot ahead of the initiator's outbound one
 * (it restarted: its durable inbound watermark ran ahead in chunks), so the honest initiator's
 * Finished would need a skip; then the responder sends its Finished first. The attacker may
 * raise the watermark claims of either hello. Checked: before a side verified a peer tag it
 * uses only its own next outbound slot (its Finished) and moves no inbound watermark.
 * (The implementation's one exception, both sides restarted with both inbound watermarks
 * ahead, bounded by maxPreAuthSkip, is not modelled: the initiator's inbound starts at 0.)
 *
 * Pads: each side's outbound pad stream has slots 0..NSLOTS-1. A sender reserves slots durably
 * in chunks of CHUNK before it uses them (Spec/keypool.md "Reserve before use"); a crash loses
 * the in-memory cursor but never the durable watermark. Ghost arrays record every slot whose tag
 * ever left a process; a slot leaving twice is a violation.
 */

/* Mutants, for checking that the model can fail (Spec/check-model.sh runs each and expects a
   violation): BUG_NO_TRANSCRIPT_CHECK (Finished does not cover the negotiation),
   BUG_VOLATILE_WATERMARK (a crash restarts from an in-memory, not durable, pad cursor),
   BUG_NO_REPLAY_CHECK (a receiver accepts any authentic slot, not only fresh ones),
   BUG_IGNORE_VALIDATION (a pki session goes on whatever the chain validation answered),
   BUG_PREAUTH_SKIP (the old resync: the initiator moves both watermarks to the hellos' claimed
   maxima before any peer tag verified, and always sends its Finished first). */
#ifdef BUG_NO_TRANSCRIPT_CHECK
#define TRANSCRIPT_OK(t, mine) (1)
#else
#define TRANSCRIPT_OK(t, mine) ((t) == (mine))
#endif
#ifdef BUG_VOLATILE_WATERMARK
#define RESTART_CURSOR 0
#else
#define RESTART_CURSOR durableI
#endif
#ifdef BUG_NO_REPLAY_CHECK
#define FRESH(slot, next) (1)
#else
#define FRESH(slot, next) ((slot) >= (next))
#endif

#ifdef BUG_IGNORE_VALIDATION
#define VALID(v) (1)
#else
#define VALID(v) ((v) == 1)
#endif

#define NSLOTS 6
#define CHUNK 2
#define MAXCRASH 1
#define MAXATTACK 3

mtype = { HELLO, REPLY, FIN, DATA };
mtype = { POOL, PKI };
mtype mode = POOL;

/* frame: type, pad slot (or offer for HELLO / choice for REPLY), transcript value, tag ok,
   certificate (pki: 1 = the honest peer's, 0 = the attacker's; carried by REPLY and the
   initiator's FIN), watermarks (HELLO / REPLY: out * 8 + in) */
chan I2X = [1] of { mtype, byte, int, bit, bit, byte };
chan X2R = [1] of { mtype, byte, int, bit, bit, byte };
chan R2X = [1] of { mtype, byte, int, bit, bit, byte };
chan X2I = [1] of { mtype, byte, int, bit, bit, byte };

/* The validation pause: request (the certificate) and answer (valid or not), one per side. The
   validator answers "valid" exactly for the honest peer's certificate, or never answers (the
   handshake deadline then closes the session). */
chan VreqI = [1] of { bit };
chan VresI = [1] of { bit };
chan VreqR = [1] of { bit };
chan VresR = [1] of { bit };
bit substitutedI = 0;   /* the attacker replaced the certificate the initiator receives */
bit substitutedR = 0;

/* Ghosts: which pad slots ever left each side, and which the receiver accepted. */
bit usedI[NSLOTS];
bit usedR[NSLOTS];
bit acceptedByR[NSLOTS];
bit acceptedByI[NSLOTS];

int transcriptI = 0;
int transcriptR = 0;
bit establishedI = 0;
bit establishedR = 0;
byte suiteI = 0;   /* the suite each side ends up using */
byte suiteR = 0;
byte attacks = 0;

/* Suites as a bitmask offer: 1 = weak, 2 = strong. Both honest sides support both; the choice
   rule is "strongest offered". A downgrade is any run where an established side uses 1. */
#define STRONG 2
#define WEAK 1
#define choose(offer) ((((offer) & STRONG) != 0) -> STRONG : WEAK)
/* The transcript binds the offer, the choice and both hellos' watermarks (the real one MACs
   every handshake byte). */
#define transcript(offer, choice, wi, wr) ((offer) * 4 + (choice) + 16 * (wi) + 1024 * (wr))
#define WOUT(w) ((w) / 8)
#define WIN(w) ((w) % 8)
#define MAX(a, b) (((a) > (b)) -> (a) : (b))
#define ANY 255

/* Durable pad watermarks and in-memory cursors. */
byte durableI = 0; byte cursorI = 0;
byte durableR = 0; byte cursorR = 0;
byte crashes = 0;
/* Receivers' next acceptable pad slot (durable with the pool's inbound watermark). */
byte nextI = 0; byte nextR = 0;
/* Ghosts: whether each side verified a peer tag yet, and its watermarks when it began. */
bit verifiedI = 0; bit verifiedR = 0;
byte baseCursorI = 0; byte baseCursorR = 0; byte baseNextI = 0; byte baseNextR = 0;

inline reserveI() {
    if
    :: cursorI == durableI && durableI + CHUNK <= NSLOTS -> durableI = durableI + CHUNK
    :: else -> skip
    fi
}
inline reserveR() {
    if
    :: cursorR == durableR && durableR + CHUNK <= NSLOTS -> durableR = durableR + CHUNK
    :: else -> skip
    fi
}

proctype Initiator() {
    byte slot; byte choice; bit ok; bit cert; bit valid; mtype m; byte w; byte myW;
    byte sOut; byte sIn; bit first; int t;
    myW = cursorI * 8 + nextI;
    I2X ! HELLO, (STRONG | WEAK), 0, 1, 0, myW;
    if
    :: X2I ? m, choice, t, ok, cert, w
    :: timeout -> goto abort   /* handleTimeout(now:) closes a stalled handshake */
    fi;
    if
    :: m != REPLY -> goto abort
    :: else -> skip
    fi;
    if
    :: mode == PKI ->
        /* Pause: validatePeer(chain); nothing is sent or consumed until peerValidated. */
        VreqI ! cert;
        if
        :: VresI ? valid
        :: timeout -> goto abort
        fi;
        if
        :: !VALID(valid) -> goto abort   /* session.bad-certificate, alert, nothing consumed */
        :: else -> skip
        fi
    :: else -> skip
    fi;
    transcriptI = transcript(STRONG | WEAK, choice, myW, w);
    /* The plan (Spec/session.md 4.1): starts and who sends the first Finished. Pki mode runs
       on fresh bootstrap streams: no resync, the initiator first. */
    if
    :: mode == POOL ->
        if
        :: WOUT(w) >= NSLOTS || WIN(w) >= NSLOTS -> goto abort   /* pool-desync */
        :: else -> skip
        fi;
        sOut = MAX(cursorI, WIN(w)); sIn = MAX(WOUT(w), nextI);
#ifdef BUG_PREAUTH_SKIP
        first = 1;
        /* The old rule: advance to the claimed maxima at once, before any tag verified. */
        cursorI = sOut; if :: durableI < cursorI -> durableI = cursorI :: else -> skip fi;
        nextI = MAX(nextI, sIn);
#else
        if
        :: sOut > cursorI && sIn > WOUT(w) -> goto abort   /* both behind: not modelled */
        :: else -> first = (sOut == cursorI)
        fi
#endif
    :: else -> sOut = cursorI; sIn = ANY; first = 1
    fi;
    if
    :: first ->
        /* Finished from the own next outbound slot: nothing skipped, nothing inbound moved. */
        assert(verifiedI || (cursorI == baseCursorI && nextI == baseNextI));
        reserveI();
        if
        :: cursorI < durableI && cursorI == sOut ->
            slot = cursorI; cursorI++;
            assert(!usedI[slot]); usedI[slot] = 1;
            I2X ! FIN, slot, transcriptI, 1, 1, 0
        :: else -> goto abort   /* pool exhausted: typed error, nothing sent */
        fi
    :: else -> skip
    fi;
    if
    :: X2I ? m, slot, t, ok, cert, w
    :: timeout -> goto abort
    fi;
    if
    :: m == FIN && ok && TRANSCRIPT_OK(t, transcriptI) && slot < NSLOTS && FRESH(slot, nextI) && (sIn == ANY || slot == sIn) ->
        /* Only pads the peer handed out are consumed (no MITM got this far). */
        assert(!acceptedByI[slot]); assert(usedR[slot]); acceptedByI[slot] = 1; nextI = slot + 1;
        verifiedI = 1;
        /* Established only with the authentic peer. */
        assert(mode == POOL || !substitutedI)
    :: else -> goto abort   /* bad tag, transcript mismatch (downgrade) or replay: alert */
    fi;
    if
    :: !first ->
        /* Second: the hellos are authentic now; skip to the agreed start, then Finished. */
        cursorI = sOut; if :: durableI < cursorI -> durableI = cursorI :: else -> skip fi;
        reserveI();
        if
        :: cursorI < durableI ->
            slot = cursorI; cursorI++;
            assert(!usedI[slot]); usedI[slot] = 1;
endSecondFin: I2X ! FIN, slot, transcriptI, 1, 1, 0
        :: else -> goto abort
        fi
    :: else -> skip
    fi;
    atomic { suiteI = choice; establishedI = 1 };
    /* Established: send data frames, each with a fresh pad; crashes may happen between. */
    do
    :: crashes < MAXCRASH -> crashes++; cursorI = RESTART_CURSOR   /* crash: in-memory cursor lost */
    :: reserveI();
       if
       :: cursorI < durableI ->
           slot = cursorI; cursorI++;
           assert(!usedI[slot]); usedI[slot] = 1;
           /* Blocked at the end: the responder left (the transport just buffers). */
endData:   I2X ! DATA, slot, transcriptI, 1, 0, 0
       :: else -> break
       fi
    :: break
    od;
abort:
    /* A handshake that failed before a peer tag verified cost at most the own Finished slot. */
    assert(verifiedI || (cursorI <= baseCursorI + 1 && nextI == baseNextI))
}

proctype Responder() {
    byte offer; byte slot; bit ok; bit cert; bit valid; mtype m; byte w; byte myW;
    byte sOut; byte sIn; bit first; int t;
    if
    :: X2R ? m, offer, t, ok, cert, w
    :: timeout -> goto abort
    fi;
    if
    :: m != HELLO || offer == 0 -> goto abort
    :: else -> skip
    fi;
    myW = cursorR * 8 + nextR;
    transcriptR = transcript(offer, choose(offer), w, myW);
    if
    :: mode == POOL ->
        if
        :: WOUT(w) >= NSLOTS || WIN(w) >= NSLOTS -> goto abort   /* pool-desync */
        :: else -> skip
        fi;
        sOut = MAX(cursorR, WIN(w)); sIn = MAX(WOUT(w), nextR);
        if
        :: sOut > cursorR && sIn > WOUT(w) -> goto abort   /* both behind: not modelled */
        :: else -> first = (sIn > WOUT(w))   /* only the initiator would need a skip */
        fi
    :: else -> sOut = cursorR; sIn = ANY; first = 0
    fi;
    R2X ! REPLY, choose(offer), 0, 1, 1, myW;
    if
    :: first ->
        assert(verifiedR || (cursorR == baseCursorR && nextR == baseNextR));
        reserveR();
        if
        :: cursorR < durableR && cursorR == sOut ->
            slot = cursorR; cursorR++;
            assert(!usedR[slot]); usedR[slot] = 1;
            /* A send still blocked at the end means the initiator gave up (its deadline);
               the responder's deadline closes it too. */
endFirstFin: R2X ! FIN, slot, transcriptR, 1, 0, 0
        :: else -> goto abort
        fi
    :: else -> skip
    fi;
    if
    :: X2R ? m, slot, t, ok, cert, w
    :: timeout -> goto abort
    fi;
    if
    :: m == FIN && mode == PKI ->
        /* Pause on the initiator's Finished: validate its chain before its tag is checked and
           before anything is consumed (Spec/handshake.md section 6). */
        VreqR ! cert;
        if
        :: VresR ? valid
        :: timeout -> goto abort
        fi;
        if
        :: !VALID(valid) -> goto abort
        :: else -> skip
        fi
    :: else -> skip
    fi;
    if
    :: m == FIN && ok && TRANSCRIPT_OK(t, transcriptR) && slot < NSLOTS && FRESH(slot, nextR) && (sIn == ANY || slot == sIn) ->
        assert(!acceptedByR[slot]); assert(usedI[slot]); acceptedByR[slot] = 1; nextR = slot + 1;
        verifiedR = 1;
        assert(mode == POOL || !substitutedR)
    :: else -> goto abort
    fi;
    if
    :: !first ->
        cursorR = MAX(cursorR, sOut); if :: durableR < cursorR -> durableR = cursorR :: else -> skip fi;
        reserveR();
        if
        :: cursorR < durableR ->
            slot = cursorR; cursorR++;
            assert(!usedR[slot]); usedR[slot] = 1;
            R2X ! FIN, slot, transcriptR, 1, 0, 0
        :: else -> goto abort
        fi
    :: else -> skip
    fi;
    atomic { suiteR = choose(offer); establishedR = 1 };
    /* Receive data: accept only authentic frames with fresh slots, in order. */
    do
    :: X2R ? m, slot, t, ok, cert, w ->
        if
        :: m == DATA && ok && TRANSCRIPT_OK(t, transcriptR) && slot < NSLOTS && FRESH(slot, nextR) ->
            assert(!acceptedByR[slot]); assert(usedI[slot]); acceptedByR[slot] = 1; nextR = slot + 1
        :: else -> skip   /* dropped and counted; the bound closes the session (not modelled) */
        fi
    :: timeout -> break
    od;
abort:
    assert(verifiedR || (cursorR <= baseCursorR + 1 && nextR == baseNextR))
}

/* The attacker relays each direction and may drop, duplicate, replay the last frame seen,
   downgrade the offer, or inject a frame whose tag it had to guess (ok = 0). In pki mode it may
   substitute its own certificate; it is then the peer of that side's key agreement and makes
   Finished tags that verify there (ok = 1, transcript as that side computed it). */
proctype Attacker() {
    mtype m; byte a; int t; bit ok; bit c; byte w;
    mtype lm = DATA; byte la = 0; int lt = 0; byte lw = 0; bit have = 0;
end:
    do
    :: I2X ? m, a, t, ok, c, w ->
        if
        :: end6: X2R ! m, a, t, ok, c, w
        :: full(X2R) -> skip   /* the responder stopped reading: the frame is lost */
        :: attacks < MAXATTACK -> attacks++                       /* drop */
        :: attacks < MAXATTACK && m == HELLO -> attacks++; end1: X2R ! m, WEAK, t, ok, c, w   /* downgrade */
        :: attacks < MAXATTACK && m == HELLO && mode == POOL -> attacks++; end11: X2R ! m, a, t, ok, c, w + 1   /* raise the inbound claim */
        :: attacks < MAXATTACK -> attacks++; end2: X2R ! m, a, t, ok, c, w; lm = m; la = a; lt = t; lw = w; have = 1  /* keep for replay */
        :: attacks < MAXATTACK && m == FIN && mode == PKI ->        /* impersonate the initiator */
            attacks++; substitutedR = 1; end8: X2R ! FIN, a, transcriptR, 1, 0, 0
        fi
    :: have && attacks < MAXATTACK -> attacks++; end3: X2R ! lm, la, lt, 1, 0, lw; have = 0      /* replay */
    :: attacks < MAXATTACK -> attacks++; end4: X2R ! DATA, 0, transcriptR, 0, 0, 0               /* forged tag */
    :: R2X ? m, a, t, ok, c, w ->
        if
        :: end7: X2I ! m, a, t, ok, c, w
        :: full(X2I) -> skip
        :: attacks < MAXATTACK -> attacks++
        :: attacks < MAXATTACK && m == REPLY -> attacks++; end5: X2I ! m, WEAK, t, ok, c, w   /* downgrade the choice */
        :: attacks < MAXATTACK && m == REPLY && mode == POOL -> attacks++; end12: X2I ! m, a, t, ok, c, w + 1   /* raise the inbound claim */
        :: attacks < MAXATTACK && m == REPLY && mode == POOL -> attacks++; end13: X2I ! m, a, t, ok, c, w + 8   /* raise the outbound claim */
        :: attacks < MAXATTACK && m == REPLY && mode == PKI ->     /* impersonate the responder */
            attacks++; substitutedI = 1; end9: X2I ! m, a, t, ok, 0, w
        fi
    :: substitutedI && attacks < MAXATTACK && nfull(X2I) ->          /* the MITM's Finished */
        attacks++; end10: X2I ! FIN, 0, transcriptI, 1, 0, 0
    :: timeout -> break
    od
}

/* The driver's asynchronous chain validation: valid exactly for the honest peer's certificate,
   or no answer at all. */
proctype Validator(chan req; chan res) {
    bit c;
end:
    do
    :: req ? c ->
        if
        :: res ! c
        :: skip
        fi
    od
}

init {
    atomic {
        if
        :: mode = POOL
        :: mode = POOL; nextR = 1; baseNextR = 1   /* the responder restarted: its inbound ahead */
        :: mode = PKI
        fi;
        run Validator(VreqI, VresI); run Validator(VreqR, VresR);
        run Initiator(); run Responder(); run Attacker()
    }
}

/* Agreement and no downgrade: checked whenever both are established (monitor process). */
active proctype Monitor() {
    do
    :: (establishedI && establishedR) ->
        assert(transcriptI == transcriptR);
        assert(suiteI == STRONG && suiteR == STRONG);
        break
    :: timeout -> break
    od
}

/* Either side alone: an established side used the strong suite, whatever the attacker did. */
ltl noDowngrade { [] ((establishedI -> suiteI == STRONG) && (establishedR -> suiteR == STRONG)) }
