(function(){
  const rows=[...document.querySelectorAll('#edits tbody tr')];
  const cards=new Map([...document.querySelectorAll('article.card')].map(c=>[c.dataset.key,c]));
  document.getElementById('filter').addEventListener('input',e=>{
    const words=e.target.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown=0;
    for(const row of rows){
      const hit=words.every(w=>row.dataset.search.includes(w));
      row.classList.toggle('hidden',!hit);
      const card=cards.get(row.dataset.key); if(card) card.classList.toggle('hidden',!hit);
      if(hit) shown++;
    }
    document.getElementById('count').textContent=shown+' shown';
  });
  for(const th of document.querySelectorAll('#edits th[data-sort]')){
    th.addEventListener('click',()=>{
      const column=[...th.parentNode.children].indexOf(th);
      const down=th.getAttribute('aria-sort')!=='descending';
      for(const other of document.querySelectorAll('#edits th')) other.removeAttribute('aria-sort');
      th.setAttribute('aria-sort',down?'descending':'ascending');
      const value=r=>{const v=r.children[column].dataset.value;return v===''?NaN:parseFloat(v);};
      rows.sort((a,b)=>{const x=value(a),y=value(b);
        if(isNaN(x))return 1; if(isNaN(y))return -1; return down?y-x:x-y;});
      const body=document.querySelector('#edits tbody'); rows.forEach(r=>body.appendChild(r));
    });
  }
  const seen=new IntersectionObserver(entries=>{
    for(const entry of entries){
      const video=entry.target;
      if(entry.isIntersecting){
        if(!video.src){video.src=video.dataset.src;}
        video.play().catch(()=>{});
      }else if(video.src){video.pause();}
    }
  },{rootMargin:'200px'});
  document.querySelectorAll('video.compare').forEach(v=>seen.observe(v));
})();
